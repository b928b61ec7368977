"""Outlier Exposure for classifiers: WRN/AllConv, the OE losses, OOD scores and the trainer.

``python -m classifiers_oe.train`` trains (modes ``baseline``, ``oe_tune``,
``oe_scratch``); :mod:`classifiers_oe.scores` turns logits into anomaly scores
(higher = more anomalous).
"""
