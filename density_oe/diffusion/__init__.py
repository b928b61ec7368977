"""A continuous-time VP diffusion (VDM) with the variational bound on the 8-bit discrete log-likelihood."""
from .model import Diffusion, DiffusionConfig, sample_family

__all__ = ["Diffusion", "DiffusionConfig", "sample_family"]
