"""Density models with Outlier Exposure: four families behind one interface, the OE margin loss and the trainer.

The families are PixelCNN++ (:mod:`density_oe.pixelcnn`), Glow (:mod:`density_oe.glow`), a VAE
(:mod:`density_oe.vae`) and a VDM diffusion model (:mod:`density_oe.diffusion`).  Each owns its
network, layers, likelihood and config; :mod:`density_oe.archs` registers them for ``--arch``.  Everything else
sees a model only through ``model.log_prob(x)``, the per-image log-likelihood in nats, and is shared: bits/dim
(:mod:`density_oe.units`), image-shape checks (:mod:`density_oe.shapes`), the OE loss
(:class:`OEMarginLoss`), the trainer (``python -m density_oe.train``), scoring, sampling, weight loading
(:func:`density_oe.weights.load_density_model`) and the detectors.  Importing the package registers the detectors
(:mod:`density_oe.detectors`, and the VAE's ``likelihood_regret`` in :mod:`density_oe.vae.regret`) in
:data:`oe_core.detectors.DETECTORS`.
"""
from . import detectors  # noqa: F401  (detector registration)
from .vae import regret  # noqa: F401  (registers likelihood_regret)
from .config import KIND, DensityConfig
from .losses import OEMarginLoss

__all__ = ["KIND", "DensityConfig", "OEMarginLoss"]
