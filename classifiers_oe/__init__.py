"""Outlier Exposure for classifiers: WRN/AllConv, the OE losses, OOD scores and the trainer.

``python -m classifiers_oe.train`` trains (modes ``baseline``, ``oe_tune``,
``oe_scratch``); :mod:`classifiers_oe.scores` turns logits into anomaly scores
(higher = more anomalous).  Importing the package registers the ``toy-shapes``
dataset (:mod:`classifiers_oe.toy_data`) used by tests and quick demos.
"""
from . import toy_data  # noqa: F401  (dataset registration)
