"""A continuous-time VP diffusion (VDM) with the variational bound on the 8-bit discrete log-likelihood."""
from .model import Diffusion, DiffusionConfig

__all__ = ["Diffusion", "DiffusionConfig"]
