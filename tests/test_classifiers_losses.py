"""OE losses and OOD scores against float64 numpy computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from classifiers_oe.losses import EnergyOELoss, OELoss, energy_oe_loss, oe_loss
from classifiers_oe.logits import energy_score, max_logit_score, msp_score, uniform_cross_entropy, xent_uniform_score
from oe_core.errors import OEError


def np_logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def np_ce(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np_logsumexp(z) - z[np.arange(len(y)), y]))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    z_in = rng.normal(size=(6, 10)) * 3
    y = rng.integers(0, 10, size=6)
    z_out = rng.normal(size=(12, 10)) * 3
    return z_in, y, z_out


def test_oe_loss_equals_hand_computation(batch):
    z_in, y, z_out = batch
    # H(U; p) = -(1/K) sum_k log softmax(z)_k, written from the definition.
    log_p = z_out - np_logsumexp(z_out)[:, None]
    h_uniform = -log_p.mean(axis=1)
    expected = np_ce(z_in, y) + 0.5 * h_uniform.mean()
    got = oe_loss(torch.tensor(z_in, dtype=torch.float32), torch.tensor(y), torch.tensor(z_out, dtype=torch.float32))
    assert got.item() == pytest.approx(expected, rel=1e-5)
    got_lam = oe_loss(torch.tensor(z_in), torch.tensor(y), torch.tensor(z_out), lam=2.0)
    assert got_lam.item() == pytest.approx(np_ce(z_in, y) + 2.0 * h_uniform.mean(), rel=1e-5)


@pytest.mark.parametrize("k", [2, 10, 100])
def test_outlier_term_minimum_is_log_k_at_uniform_outputs(k):
    flat = torch.full((4, k), 3.7)
    assert torch.allclose(uniform_cross_entropy(flat), torch.full((4,), math.log(k)))
    # any non-uniform softmax is strictly above log K
    z = torch.randn(256, k, generator=torch.Generator().manual_seed(k))
    assert (uniform_cross_entropy(z) > math.log(k)).all()
    # and it is a minimum: the gradient vanishes at uniform logits
    z0 = flat.clone().requires_grad_(True)
    uniform_cross_entropy(z0).sum().backward()
    assert z0.grad.abs().max() < 1e-6


def test_energy_oe_loss_equals_hand_computation(batch):
    z_in, y, z_out = batch
    z_in = z_in + np.linspace(5.0, 35.0, len(z_in))[:, None]   # energies on both sides of m_in
    z_out = z_out + np.linspace(-2.0, 6.0, len(z_out))[:, None]   # and of m_out
    e_in, e_out = -np_logsumexp(z_in), -np_logsumexp(z_out)
    m_in, m_out, w = -25.0, -7.0, 0.1
    hinge = np.mean(np.maximum(e_in - m_in, 0) ** 2) + np.mean(np.maximum(m_out - e_out, 0) ** 2)
    expected = np_ce(z_in, y) + w * hinge
    assert (e_in > m_in).any() and (e_in < m_in).any()
    assert (e_out > m_out).any() and (e_out < m_out).any()
    got = energy_oe_loss(torch.tensor(z_in), torch.tensor(y), torch.tensor(z_out))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got2 = energy_oe_loss(torch.tensor(z_in), torch.tensor(y), torch.tensor(z_out), m_in=-10, m_out=-1, lam=1)
    hinge2 = np.mean(np.maximum(e_in + 10, 0) ** 2) + np.mean(np.maximum(-1 - e_out, 0) ** 2)
    assert got2.item() == pytest.approx(np_ce(z_in, y) + hinge2, rel=1e-6)


def test_losses_are_float32_under_bf16_logits(batch):
    z_in, y, z_out = batch
    got = oe_loss(torch.tensor(z_in).bfloat16(), torch.tensor(y), torch.tensor(z_out).bfloat16())
    assert got.dtype == torch.float32


def test_scores_match_numpy_and_are_oriented_higher_is_more_anomalous():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 7)) * 4
    t = torch.tensor(z)
    p = np.exp(z - np_logsumexp(z)[:, None])
    np.testing.assert_allclose(msp_score(t).numpy(), -p.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(max_logit_score(t).numpy(), -z.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(energy_score(t).numpy(), -np_logsumexp(z), rtol=1e-12)
    np.testing.assert_allclose(energy_score(t, T=2.5).numpy(), -2.5 * np_logsumexp(z / 2.5), rtol=1e-12)
    np.testing.assert_allclose(xent_uniform_score(t).numpy(), z.mean(axis=1) - np_logsumexp(z), rtol=1e-12)
    # a confident (in-distribution-like) row scores lower than a flat (OOD-like) row on every score
    conf, flat = torch.tensor([[12.0, 0, 0, 0]]), torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    for score in (msp_score, max_logit_score, energy_score, xent_uniform_score):
        assert score(flat).item() > score(conf).item(), score.__name__
    assert xent_uniform_score(flat).item() == pytest.approx(-math.log(4))


def test_scores_dtype_and_shape_errors():
    z16 = torch.randn(5, 3).bfloat16()
    for score in (msp_score, max_logit_score, energy_score, xent_uniform_score):
        assert score(z16).dtype == torch.float32 and score(z16).shape == (5,)
    with pytest.raises(OEError, match="shape"):
        msp_score(torch.randn(5))


def test_loss_modules_compute_the_paper_reduction_not_the_joint_batch_average(batch):
    """OELoss averages each term over its own batch (the paper's code); pytorch-ood's OutlierExposureLoss
    averages over the joint batch, i.e. (N * CE + lam * M * OE) / (N + M)."""
    z_in, y, z_out = batch
    zi, yt, zo = torch.tensor(z_in), torch.tensor(y), torch.tensor(z_out)
    h_uniform = (np_logsumexp(z_out) - z_out.mean(axis=1)).mean()
    got = OELoss(lam=0.7)(zi, yt, zo)
    assert got.item() == pytest.approx(np_ce(z_in, y) + 0.7 * h_uniform, rel=1e-6)
    n, m = len(z_in), len(z_out)
    joint = (n * np_ce(z_in, y) + 0.7 * m * h_uniform) / (n + m)
    assert abs(got.item() - joint) > 0.1
    assert EnergyOELoss(-10.0, -1.0, lam=0.3)(zi, yt, zo).item() == pytest.approx(
        energy_oe_loss(zi, yt, zo, m_in=-10.0, m_out=-1.0, lam=0.3).item())
    assert "lam=0.7" in repr(OELoss(0.7))


def test_the_papers_defaults_in_functions_and_modules(batch):
    import inspect
    z_in, y, z_out = (torch.tensor(a) for a in batch)
    assert inspect.signature(oe_loss).parameters["lam"].default == 0.5 and OELoss().lam == 0.5
    energy = inspect.signature(energy_oe_loss).parameters
    assert (energy["m_in"].default, energy["m_out"].default, energy["lam"].default) == (-25.0, -7.0, 0.1)
    e = EnergyOELoss()
    assert (e.m_in, e.m_out, e.lam) == (-25.0, -7.0, 0.1)
    assert repr(OELoss()) == "OELoss(lam=0.5)" and repr(e) == "EnergyOELoss(m_in=-25.0, m_out=-7.0, lam=0.1)"
    ce = np_ce(*batch[:2])
    oe_term = float(np.mean(np_logsumexp(batch[2]) - batch[2].mean(1)))
    assert oe_loss(z_in, y, z_out).item() == pytest.approx(ce + 0.5 * oe_term, rel=1e-6)
    assert OELoss()(z_in, y, z_out).item() == pytest.approx(ce + 0.5 * oe_term, rel=1e-6)
    # in-distribution energies near -8 (above m_in) and outlier energies near -13 (below m_out): both hinges act
    z_out = z_out + 5.0
    assert (-torch.logsumexp(z_in, 1) > -25).all() and (-torch.logsumexp(z_out, 1) < -7).all()
    explicit = energy_oe_loss(z_in, y, z_out, -25.0, -7.0, 0.1).item()
    assert energy_oe_loss(z_in, y, z_out).item() == explicit and EnergyOELoss()(z_in, y, z_out).item() == explicit


@pytest.mark.parametrize("loss", [oe_loss, energy_oe_loss])
def test_no_outliers_is_the_cross_entropy_and_one_outlier_counts(batch, loss):
    z_in, y, z_out = (torch.tensor(a) for a in batch)
    assert loss(z_in, y, z_out[:0]).item() == pytest.approx(np_ce(*batch[:2]), rel=1e-6)
    assert loss(z_in, y, z_out[:1] - 50.0).item() > np_ce(*batch[:2]) + 1e-3
