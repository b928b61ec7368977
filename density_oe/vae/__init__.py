"""A convolutional VAE with the importance-weighted bound as its log-likelihood (:mod:`density_oe.vae.model`)."""
from .model import VAE, VAEConfig, data_dependent_init

__all__ = ["VAE", "VAEConfig", "data_dependent_init"]
