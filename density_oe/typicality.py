"""The typicality test (Nalisnick, Matsukawa, Teh & Lakshminarayanan 2019, arXiv:1906.02994) as OOD scores.

A likelihood model's samples are *typical*: their average negative log-likelihood is close to the model's entropy,
``-1/M sum_m log p(x_m) ~ H``.  OOD data can be less likely (large NLL) or *more* likely than that (SVHN under a
CIFAR-10 model); the test flags both.  With ``H`` estimated on in-distribution training images,
``Ĥ = mean_n nll(x_n)``, the statistic of a batch of ``M`` test inputs is::

    T_M = | 1/M sum_{m=1..M} nll(x_m) - Ĥ |

and a batch is flagged OOD when ``T_M`` exceeds a bootstrap threshold; here ``T_M`` itself is the score (higher =
more anomalous), which AUROC/FPR95 threshold over all values.  ``M = 1`` is the single-image form ``|nll(x) -
Ĥ|``.  The batch form scores consecutive groups of ``M`` images (in scoring order; a last incomplete group uses
its own size) and gives every image of a group the group's ``T_M``, so the per-image metrics weigh each batch
``M`` times, i.e. they are the metrics over batches.  Groups are formed within each scoring batch, so the
scoring batch size should be a multiple of ``M`` (the evaluation's default 200 is one for every registered
M: 2, 10, 25).  NLL is in bits/dim (a per-dimension rescaling of nats per
image: rankings are unchanged), with Ĥ and the scores computed the same way (for Glow: the same fixed
dequantisation draw).
"""
from __future__ import annotations

import torch

BATCH_SIZES = (2, 10, 25)  # the batch forms registered as detectors typicality_m2, _m10, _m25


def entropy_estimate(nll: torch.Tensor) -> float:
    """``Ĥ``: the mean of the in-distribution NLLs ``nll`` [N] (float64)."""
    if nll.numel() == 0:
        raise ValueError("the typicality test needs at least one in-distribution image to estimate the entropy")
    return float(nll.double().mean())


def typicality_scores(nll: torch.Tensor, entropy: float, m: int = 1) -> torch.Tensor:
    """``T_M`` of consecutive groups of ``m`` images of ``nll`` [B], repeated for every image of a group."""
    if m < 1:
        raise ValueError(f"typicality batch size M must be >= 1, got {m}")
    nll = nll.double()
    if m == 1:
        return (nll - entropy).abs()
    groups = torch.arange(len(nll), device=nll.device) // m
    sums = torch.zeros(int(groups[-1]) + 1 if len(nll) else 0, dtype=nll.dtype, device=nll.device)
    sums.index_add_(0, groups, nll)
    counts = torch.bincount(groups).to(nll.dtype)
    return (sums / counts - entropy).abs()[groups]

