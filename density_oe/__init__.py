"""PixelCNN++ with Outlier Exposure: the model, its likelihood, the OE margin loss and the trainer.

``python -m density_oe.train`` trains (modes ``baseline``, ``oe_tune``); :class:`OEMarginLoss` is the OE loss;
:func:`density_oe.weights.load_density_model` loads any density weights.  Importing the package registers its
detectors (:mod:`density_oe.detectors`) in :data:`oe_core.detectors.DETECTORS`.
"""
from . import detectors  # noqa: F401  (detector registration)
from .config import KIND, DensityConfig
from .losses import OEMarginLoss

__all__ = ["KIND", "DensityConfig", "OEMarginLoss"]
