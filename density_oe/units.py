"""Units shared by every density family: log-likelihoods in nats per image -> bits per dimension."""
from __future__ import annotations

import math

import torch


def bits_per_dim(log_likelihood: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Negative log-likelihood in nats -> bits per dimension: ``-ll / (num_dims * ln 2)``."""
    return -log_likelihood / (num_dims * math.log(2.0))


def model_bits_per_dim(model, x: torch.Tensor, out=None) -> torch.Tensor:
    """Per-image bits/dim (float64 [B]) of images ``x`` (B, C, H, W) on the [-1, 1] grid under a density model:
    ``-log p(x) / (C H W ln 2)`` from ``model.log_prob(x, out)`` (``out``: the output of the model's own forward
    pass on ``x``, when the caller ran it through a wrapper; None: ``log_prob`` runs it).

    The one route from a model to bits/dim for scoring: :class:`density_oe.scorer.Scorer` (``density_oe.score``)
    and every density detector (``bpd``, ``likelihood_ratio``, ``complexity_*``, ``typicality*``) call it, so
    their numbers agree bit for bit.  The conversion runs in float64 on the float32 log-likelihood.
    """
    log_prob = model.log_prob(x) if out is None else model.log_prob(x, out=out)
    return bits_per_dim(log_prob.double(), x[0].numel())
