"""Units shared by every density family: log-likelihoods in nats per image -> bits per dimension."""
from __future__ import annotations

import math

import torch


def bits_per_dim(log_likelihood: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Negative log-likelihood in nats -> bits per dimension: ``-ll / (num_dims * ln 2)``."""
    return -log_likelihood / (num_dims * math.log(2.0))
