"""OOD scores from classifier logits, all oriented so that higher = more anomalous.

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


def energy_score(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Free energy ``-T * logsumexp(z / T)`` (Liu et al. 2020); higher energy = more anomalous."""
    return -T * torch.logsumexp(_float(logits) / T, dim=1)


def xent_uniform_score(logits: torch.Tensor) -> torch.Tensor:
    """``mean_k(z) - logsumexp(z)`` = -H(U; softmax(z)): the reference's ``--use_xent`` score.

    H(U; p) = logsumexp(z) - mean(z) is the cross-entropy from the uniform
    distribution to the softmax; it is smallest (``log K``) for a uniform softmax,
    which OE trains outliers towards, and large for confident predictions.  Its
    negation is therefore oriented higher = more anomalous, with maximum
    ``-log K``.  (Not ``logsumexp(z) - mean(z)`` itself: that would rank confident
    in-distribution inputs as the most anomalous.)
    """
    z = _float(logits)
    return z.mean(dim=1) - torch.logsumexp(z, dim=1)
