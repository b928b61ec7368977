"""The case registry, with every case module imported so that its cases are registered."""
from . import diffusion_cases, pixelcnn_cases, vae_cases, wrn_cases  # noqa: F401  (registration)
from .workload import CASES, CaseSpec, ordered

__all__ = ["CASES", "CaseSpec", "ordered"]
