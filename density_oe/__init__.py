"""PixelCNN++ with Outlier Exposure: the model, its likelihood, the OE margin loss and the trainer.

``python -m density_oe.train`` trains (modes ``baseline``, ``oe_tune``); :class:`OEMarginLoss` is the OE loss;
:func:`density_oe.weights.load_density_model` loads any density weights.
"""
from .config import KIND, DensityConfig
from .losses import OEMarginLoss

__all__ = ["KIND", "DensityConfig", "OEMarginLoss"]
