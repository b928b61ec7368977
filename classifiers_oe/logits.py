"""Functions of classifier logits: the OOD scores (higher = more anomalous) and the two quantities the OE losses
also use, the free energy and the cross-entropy to the uniform distribution.  Each is written here once.

Each function takes logits [B, K] (any float dtype) and returns a float32 [B]
tensor (float64 if the logits are float64).
"""
from __future__ import annotations

import torch

from oe_core.errors import OEError


def _float(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() != 2:
        raise OEError(f"scores expect logits of shape [B, K], got {tuple(logits.shape)}")
    return logits if logits.dtype == torch.float64 else logits.float()


def msp_score(logits: torch.Tensor) -> torch.Tensor:
    """``-max_k softmax(z)_k``: the reference's default score (Hendrycks & Gimpel 2017)."""
    return -torch.softmax(_float(logits), dim=1).amax(dim=1)


def max_logit_score(logits: torch.Tensor) -> torch.Tensor:
    """``-max_k z_k`` (Hendrycks et al. 2022, "Scaling OOD detection")."""
    return -_float(logits).amax(dim=1)


def free_energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Free energy ``E(x) = -T * logsumexp(z / T)`` (Liu et al. 2020); lower = more in-distribution."""
    return -T * torch.logsumexp(_float(logits) / T, dim=1)


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the uniform distribution to softmax(z):
    ``H(U; p) = -(1/K) sum_k log p_k = logsumexp(z) - mean_k(z)``.

    Its floor is ``log K``, reached exactly when all logits are equal.  The OE loss pushes outliers towards it.
    """
    z = _float(logits)
    return torch.logsumexp(z, dim=1) - z.mean(dim=1)


def energy_score(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """The free energy as a score: higher energy = more anomalous."""
    return free_energy(logits, T)


def xent_uniform_score(logits: torch.Tensor) -> torch.Tensor:
    """``-H(U; softmax(z))``: the reference's ``--use_xent`` score, with maximum ``-log K``.

    H(U; p) is smallest for a uniform softmax, which OE trains outliers towards, and large for confident
    predictions, so its negation is oriented higher = more anomalous.  H itself would rank confident
    in-distribution inputs as the most anomalous.
    """
    return -uniform_cross_entropy(logits)
