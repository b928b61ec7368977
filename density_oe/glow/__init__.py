"""Glow (Kingma & Dhariwal 2018) with an exact per-image log-likelihood on the 8-bit grid."""
from .model import Glow, GlowConfig, data_dependent_init

__all__ = ["Glow", "GlowConfig", "data_dependent_init"]
