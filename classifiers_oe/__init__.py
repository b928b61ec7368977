"""Outlier Exposure for classifiers: WRN/AllConv, the OE losses, OOD detectors and the trainer.

``python -m classifiers_oe.train`` trains (modes ``baseline``, ``oe_tune``,
``oe_scratch``); :mod:`classifiers_oe.losses` holds :class:`OELoss` and
:class:`EnergyOELoss`; :mod:`classifiers_oe.logits` turns logits into anomaly
scores (higher = more anomalous).
Importing the package registers its detectors (:mod:`classifiers_oe.detectors`, and pytorch-ood's through
:mod:`classifiers_oe.pytorch_ood`) in :data:`oe_core.detectors.DETECTORS`.
"""
from . import detectors, pytorch_ood  # noqa: F401  (detector registration)
from .config import KIND, ClassifierConfig
from .losses import EnergyOELoss, OELoss

__all__ = ["KIND", "ClassifierConfig", "EnergyOELoss", "OELoss"]
