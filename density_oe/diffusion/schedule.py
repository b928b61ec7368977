"""The fixed linear noise schedule of a variance-preserving diffusion (VDM, Kingma et al. 2021).

``gamma(t)`` is the negative log signal-to-noise ratio, linear in ``t`` in [0, 1]::

    gamma(t) = gamma_min + (gamma_max - gamma_min) t,     sigma_t^2 = sigmoid(gamma_t),  alpha_t^2 = sigmoid(-gamma_t)

so ``alpha_t^2 + sigma_t^2 = 1``.  VDM's CIFAR-10 endpoints are ``gamma_min = -13.3``, ``gamma_max = 5.0``
(``configs/cifar10.py``), which give ``sigma_0 = 1.29e-3`` and ``alpha_1^2 = 6.7e-3``.  The slope is a constant,
so ``gamma'(t)`` needs no autograd (VDM takes it from a ``jax.jvp``).
"""
from __future__ import annotations

import torch

GAMMA_MIN = -13.3   # VDM configs/cifar10.py
GAMMA_MAX = 5.0


class LinearGamma:
    """``gamma(t) = gamma_min + (gamma_max - gamma_min) t`` and the quantities derived from it."""

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX):
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t

    @property
    def slope(self) -> float:
        """``gamma'(t)``, the same for every ``t``."""
        return self.gamma_max - self.gamma_min

    @staticmethod
    def alpha_sigma(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha, sigma)`` with ``alpha^2 = sigmoid(-gamma)``, ``sigma^2 = sigmoid(gamma)``."""
        return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()

    def normalised(self, gamma: torch.Tensor) -> torch.Tensor:
        """``gamma`` mapped to [0, 1] over the schedule's range (the score network's conditioning input)."""
        return (gamma - self.gamma_min) / (self.gamma_max - self.gamma_min)
