"""Training losses of the density model, in bits per dimension: :class:`OEMarginLoss` (an ``nn.Module``) and its
functional form :func:`oe_density_loss`.

Maximum likelihood::

    L_nll = mean_i bpd(x_in_i),      bpd(x) = -log p(x) / (D ln 2),  D = 3 H W

Outlier Exposure for density models (Hendrycks et al. 2019, Sec. 4.4), a margin ranking loss on log-likelihoods::

    L = L_nll + lam * mean_{i,j} max(0, m + bpd(x_in_i) - bpd(x_out_j))

over all pairs of the in-distribution batch (size ``B_in``) and the outlier batch (size ``B_out``; the two sizes
may differ).  Both terms are in bits/dim, so ``lam`` has no units and does not depend on the image size.

The paper writes the hinge as ``max{0, num_pixels + nll(x_in) - nll(x_out)}`` and gives no ``lam`` and no units.
Defaults and why:

* **margin ``m = 1`` bit/dim.**  The paper's own score is "BPP = nll(x)/num_pixels" with values near 3 for
  CIFAR-10; that only comes out with ``nll`` in bits and ``num_pixels = 3072`` (= D).  Read with the same ``nll``
  and ``num_pixels``, the margin is D bits per image, i.e. one bit per dimension (= 2129 nats for 32x32x3).  The
  other readings are available through ``--oe-margin-unit`` (``nats_per_image`` with ``--oe-margin 1024`` is
  "num_pixels nats" with pixels = 32*32, about 0.48 bits/dim).  For scale: the baseline gap between CIFAR-10 and
  SVHN is -0.08 bits/dim (3.06 vs 2.98), and OE moved SVHN to +0.35 above CIFAR-10 (Fig. 2).
* **``lam = 1``.**  With both terms per dimension they have the same scale (about 3 bits/dim for the likelihood,
  up to ``m`` plus the gap for the hinge); the paper's Fig. 2 shows in-distribution bpd barely moving (3.06 to
  3.08), which a weight of order one allows.  Summing nats per image instead (as the port's loss does) leaves
  the ratio unchanged; only mixing units (a nats-per-image likelihood against a per-dimension margin) would make
  ``lam`` absorb a factor of thousands.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from oe_core.errors import ConfigError

MARGIN_UNITS = ("bits_per_dim", "nats_per_dim", "bits_per_image", "nats_per_image")


def margin_bits_per_dim(margin: float, unit: str, num_dims: int) -> float:
    """Convert a margin given in ``unit`` (one of :data:`MARGIN_UNITS`) to bits per dimension."""
    per_dim = {"bits_per_dim": 1.0, "nats_per_dim": 1.0 / math.log(2.0), "bits_per_image": 1.0 / num_dims,
               "nats_per_image": 1.0 / (num_dims * math.log(2.0))}
    if unit not in per_dim:
        raise ConfigError(f"margin unit {unit!r} is not one of {list(MARGIN_UNITS)}")
    return margin * per_dim[unit]


def margin_ranking_loss(bpd_in: torch.Tensor, bpd_out: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean_{i,j} max(0, margin + bpd_in[i] - bpd_out[j])`` over all in/outlier pairs (both ``[B]`` tensors)."""
    return torch.relu(margin + bpd_in[:, None] - bpd_out[None, :]).mean()


def oe_density_loss(bpd_in: torch.Tensor, bpd_out: torch.Tensor, margin: float, lam: float) -> torch.Tensor:
    """``mean(bpd_in) + lam * margin_ranking_loss(bpd_in, bpd_out, margin)`` (all in bits/dim)."""
    return bpd_in.mean() + lam * margin_ranking_loss(bpd_in, bpd_out, margin)


class OEMarginLoss(nn.Module):
    """Outlier Exposure for density models (Hendrycks, Mazeika & Dietterich, *Deep Anomaly Detection with Outlier
    Exposure*, ICLR 2019, Sec. 4.4): maximum likelihood plus a margin ranking loss on log-likelihoods::

        L = mean_i bpd(x_in_i) + lam * mean_{i,j} max(0, m + bpd(x_in_i) - bpd(x_out_j))

    over all in/outlier pairs, everything in bits per dimension (``bpd = -log2 p(x) / D``, ``D = C H W``).
    ``margin`` is given in ``unit`` (one of :data:`MARGIN_UNITS`); per-image units need ``num_dims`` (D).
    Defaults ``m = 1`` bit/dim and ``lam = 1``: the reasons are in this module's docstring.

    ``forward(bpd_in [B_in], bpd_out [B_out]) -> scalar``.
    """

    def __init__(self, margin: float = 1.0, lam: float = 1.0, unit: str = "bits_per_dim",
                 num_dims: int | None = None):
        super().__init__()
        if unit.endswith("_per_image") and not num_dims:
            raise ConfigError(f"OEMarginLoss: a margin in {unit} needs num_dims (3 * H * W)")
        self.margin = margin_bits_per_dim(margin, unit, num_dims or 1)
        self.lam = float(lam)

    def forward(self, bpd_in: torch.Tensor, bpd_out: torch.Tensor) -> torch.Tensor:
        return oe_density_loss(bpd_in, bpd_out, self.margin, self.lam)

    def extra_repr(self) -> str:
        return f"margin={self.margin:.6g} bits/dim, lam={self.lam}"
