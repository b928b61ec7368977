"""Outlier Exposure training losses for classifiers: :class:`OELoss` and :class:`EnergyOELoss` (``nn.Module``s,
called as ``loss(logits_in, targets, logits_out)``), and their functional forms :func:`oe_loss` and
:func:`energy_oe_loss`.

All losses take the logits of one joint forward pass already split into the
in-distribution part ``logits_in`` [N, K] (with labels ``targets`` [N]) and the
outlier part ``logits_out`` [M, K].  They are computed in float32 whatever the
autocast dtype of the logits.

Reduction (deliberately the paper's, not pytorch-ood's ``OutlierExposureLoss``): the cross-entropy is the mean
over the N in-distribution images and the OE term the mean over the M outliers, each mean taken on its own
batch, so ``lam`` is the ratio of the two terms whatever N and M are.  pytorch-ood (``loss/oe.py``) averages
per-image losses over the joint batch of N + M images, which scales the cross-entropy by ``N / (N + M)`` and the
OE term by ``M / (N + M)``: a relative OE weight of ``lam * M / N``, i.e. 1:1 instead of the paper's 0.5 at its
128 + 256 batches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .logits import free_energy, uniform_cross_entropy


def oe_loss(logits_in: torch.Tensor, targets: torch.Tensor, logits_out: torch.Tensor,
            lam: float = 0.5) -> torch.Tensor:
    """The OE classifier loss of Hendrycks et al. (2019), as the reference computes it:

    ``L = CE(z_in, y) + lam * mean_{x_out} [ logsumexp(z_out) - mean_k(z_out) ]``

    i.e. cross-entropy on the in-distribution batch plus ``lam`` times the mean
    cross-entropy from the outliers' softmax to the uniform distribution
    (not the KL divergence: the second term's floor is ``lam * log K``).
    ``lam = 0.5`` for vision in the paper.
    """
    ce = F.cross_entropy(logits_in.float(), targets)
    if logits_out.shape[0] == 0:
        return ce
    return ce + lam * uniform_cross_entropy(logits_out).mean()


def energy_oe_loss(logits_in: torch.Tensor, targets: torch.Tensor, logits_out: torch.Tensor,
                   m_in: float = -25.0, m_out: float = -7.0, lam: float = 0.1) -> torch.Tensor:
    """Energy-bounded OE loss of Liu et al. (2020, "Energy-based OOD detection"):

    ``L = CE(z_in, y) + lam * ( mean relu(E_in - m_in)^2 + mean relu(m_out - E_out)^2 )``

    with ``E = -logsumexp(z)``: squared hinges push in-distribution energies
    below ``m_in`` and outlier energies above ``m_out`` (CIFAR defaults
    ``m_in = -25``, ``m_out = -7``, ``lam = 0.1``).
    """
    ce = F.cross_entropy(logits_in.float(), targets)
    if logits_out.shape[0] == 0:
        return ce
    hinge_in = F.relu(free_energy(logits_in) - m_in).pow(2).mean()
    hinge_out = F.relu(m_out - free_energy(logits_out)).pow(2).mean()
    return ce + lam * (hinge_in + hinge_out)


class OELoss(nn.Module):
    r"""The Outlier Exposure loss for classifiers (Hendrycks, Mazeika & Dietterich, *Deep Anomaly Detection with
    Outlier Exposure*, ICLR 2019, Eq. 1 with the cross-entropy to the uniform distribution as
    :math:`\mathcal{L}_{OE}`; reference code ``CIFAR/oe_tune.py``)::

        L = mean_{x_in} CE(z_in, y) + lam * mean_{x_out} [ logsumexp(z_out) - mean_k(z_out) ]

    The second term is H(U; softmax(z_out)), the cross-entropy from the uniform distribution, whose floor is
    ``log K`` (it is not the KL divergence).  ``lam = 0.5`` for vision in the paper.  Each term is averaged over
    its own batch (see the module docstring for the difference from pytorch-ood).

    ``forward(logits_in [N, K], targets [N], logits_out [M, K]) -> scalar`` (M may be 0).
    """

    def __init__(self, lam: float = 0.5):
        super().__init__()
        self.lam = float(lam)

    def forward(self, logits_in: torch.Tensor, targets: torch.Tensor, logits_out: torch.Tensor) -> torch.Tensor:
        return oe_loss(logits_in, targets, logits_out, lam=self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"


class EnergyOELoss(nn.Module):
    """Energy-bounded OE loss (Liu, Wang, Owens & Li, *Energy-based Out-of-distribution Detection*, NeurIPS 2020,
    Eq. 6; reference code ``wetliu/energy_ood CIFAR/train.py``)::

        L = CE(z_in, y) + lam * ( mean relu(E(x_in) - m_in)^2 + mean relu(m_out - E(x_out))^2 ),
        E(x) = -logsumexp(z)

    CIFAR defaults ``m_in = -25``, ``m_out = -7``, ``lam = 0.1``.
    ``forward(logits_in [N, K], targets [N], logits_out [M, K]) -> scalar``.
    """

    def __init__(self, m_in: float = -25.0, m_out: float = -7.0, lam: float = 0.1):
        super().__init__()
        self.m_in, self.m_out, self.lam = float(m_in), float(m_out), float(lam)

    def forward(self, logits_in: torch.Tensor, targets: torch.Tensor, logits_out: torch.Tensor) -> torch.Tensor:
        return energy_oe_loss(logits_in, targets, logits_out, m_in=self.m_in, m_out=self.m_out, lam=self.lam)

    def extra_repr(self) -> str:
        return f"m_in={self.m_in}, m_out={self.m_out}, lam={self.lam}"
