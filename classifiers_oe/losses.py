"""Outlier Exposure training losses for classifiers.

All losses take the logits of one joint forward pass already split into the
in-distribution part ``logits_in`` [N, K] (with labels ``targets`` [N]) and the
outlier part ``logits_out`` [M, K].  They are computed in float32 whatever the
autocast dtype of the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy from the uniform distribution to softmax(z):

    ``H(U; p) = -(1/K) sum_k log p_k = logsumexp(z) - mean_k(z)``  ([B, K] -> [B]).

    It is bounded below by ``log K``, reached exactly when all logits are equal.
    """
    z = logits.float()
    return torch.logsumexp(z, dim=1) - z.mean(dim=1)


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


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Free energy ``E(x) = -T * logsumexp(z / T)`` ([B, K] -> [B]); lower = more in-distribution."""
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=1)


def energy_oe_loss(logits_in: torch.Tensor, targets: torch.Tensor, logits_out: torch.Tensor,
                   m_in: float = -25.0, m_out: float = -7.0, weight: float = 0.1) -> torch.Tensor:
    """Energy-bounded OE loss of Liu et al. (2020, "Energy-based OOD detection"):

    ``L = CE(z_in, y) + weight * ( mean relu(E_in - m_in)^2 + mean relu(m_out - E_out)^2 )``

    with ``E = -logsumexp(z)``: squared hinges push in-distribution energies
    below ``m_in`` and outlier energies above ``m_out`` (CIFAR defaults
    ``m_in = -25``, ``m_out = -7``, ``weight = 0.1``).
    """
    ce = F.cross_entropy(logits_in.float(), targets)
    if logits_out.shape[0] == 0:
        return ce
    hinge_in = F.relu(energy(logits_in) - m_in).pow(2).mean()
    hinge_out = F.relu(m_out - energy(logits_out)).pow(2).mean()
    return ce + weight * (hinge_in + hinge_out)
