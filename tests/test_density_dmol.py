"""The discretized mixture of logistics: values against an independent float64 computation (all four branches),
normalisation over the 256^3 colour values, gradients, autocast, sampling, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import expit, log_expit, log_softmax, logsumexp

from tests.plain_pixelcnn import discretized_mix_logistic_log_prob as plain_log_prob
from density_oe.pixelcnn import dmol
from density_oe.units import bits_per_dim
from oe_core.errors import OEError


def reference_channel(x: np.ndarray, mu: np.ndarray, raw_log_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 log P(bin of x) under a logistic(mu, s), from the definition: CDF differences over the bin
    [x - 1/255, x + 1/255], open-ended for values 0 and 255, the density at the centre times the bin width 2/255
    when the bin's mass is <= 1e-5.  Also returns the branch per entry (0: value 0, 1: 255, 2: mass, 3: centre)."""
    s = np.exp(np.maximum(raw_log_scale, -7.0))
    up, lo = (x + 1 / 255 - mu) / s, (x - 1 / 255 - mu) / s
    mass = expit(up) - expit(lo)
    z = (x - mu) / s
    centre = log_expit(z) + log_expit(-z) - np.log(s) + np.log(2 / 255)
    with np.errstate(divide="ignore"):
        inner = np.where(mass > 1e-5, np.log(mass), centre)
    value = np.where(x < -0.999, log_expit(up), np.where(x > 0.999, log_expit(-lo), inner))
    branch = np.where(x < -0.999, 0, np.where(x > 0.999, 1, np.where(mass > 1e-5, 2, 3)))
    return value, branch


def reference_log_prob(params: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image log-likelihood (nats) from (B, 10K, H, W) params and (B, 3, H, W) images, float64; also the
    branches and the per-channel mass ``delta`` of the interior case."""
    k = params.shape[1] // 10
    logits = params[:, :k]
    rest = params[:, k:].reshape(params.shape[0], 3, 3, k, *params.shape[2:])
    means, log_scales, coef = rest[:, :, 0], rest[:, :, 1], np.tanh(rest[:, :, 2])
    xr, xg, xb = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    mus = [means[:, 0], means[:, 1] + coef[:, 0] * xr, means[:, 2] + coef[:, 1] * xr + coef[:, 2] * xg]
    total = log_softmax(logits, axis=1)
    branches = []
    for c, xc in enumerate((xr, xg, xb)):
        value, branch = reference_channel(xc, mus[c], log_scales[:, c])
        total = total + value
        branches.append(branch)
    return logsumexp(total, axis=1).sum(axis=(1, 2)), np.stack(branches), np.stack(mus)


def random_case(seed: int, b: int, k: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Params with log-scales from very small (clamped at -7, tiny bin masses far from the mean) to broad, and
    images with plenty of 0 and 255 values."""
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(b, 10 * k, h, w, generator=g)
    rest = params[:, k:].view(b, 3, 3, k, h, w)
    rest[:, :, 1] = torch.rand(b, 3, k, h, w, generator=g) * 7.0 - 8.0       # log-scales in [-8, -1]
    rest[:, :, 0] *= 0.6
    x = torch.randint(0, 256, (b, 3, h, w), generator=g)
    x[torch.rand(b, 3, h, w, generator=g) < 0.15] = 0
    x[torch.rand(b, 3, h, w, generator=g) < 0.15] = 255
    return params, x.float() / 127.5 - 1.0


def test_log_prob_matches_an_independent_float64_computation_in_all_branches():
    """Per pixel: within float32 rounding where the bin masses are well conditioned, and never worse than the
    plain (port) computation by more than float32 noise where they are small (log of a difference of CDFs)."""
    params, x = random_case(0, 400, 3, 1, 1)                 # 400 one-pixel images: per-pixel comparison
    ref, branches, _ = reference_log_prob(params.double().numpy(), x.double().numpy())
    counts = np.bincount(branches.ravel(), minlength=4)
    assert (counts > 20).all(), counts                       # value 0, value 255, bin mass and bin centre cases
    got = dmol.log_prob(params, x)
    assert got.dtype == torch.float32 and got.shape == (400,)
    err = np.abs(got.double().numpy() - ref) / (1 + np.abs(ref))
    plain_err = np.abs(plain_log_prob(x, params).double().numpy() - ref) / (1 + np.abs(ref))
    assert np.median(err) < 3e-7 and np.percentile(err, 95) < 1e-5
    assert (err <= 2 * plain_err + 1e-6).all()


def test_log_prob_sums_over_pixels_and_agrees_with_the_plain_loss():
    params, x = random_case(1, 3, 4, 4, 8)
    ref, _, _ = reference_log_prob(params.double().numpy(), x.double().numpy())
    got = dmol.log_prob(params, x)
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=1e-5, atol=5e-2)
    np.testing.assert_allclose(got.numpy(), plain_log_prob(x, params).detach().numpy(), rtol=1e-5, atol=5e-2)


def _pixel_grid_probs(params: torch.Tensor, r: int) -> torch.Tensor:
    """The code's P(r, g, b) for all 256 x 256 (g, b) at red value r, for one pixel's params (1, 10K, 1, 1)."""
    g, b = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    x = torch.stack([torch.full_like(g, r), g, b], dim=-1).reshape(-1, 3, 1, 1).double() / 127.5 - 1.0
    p = params.double().expand(len(x), -1, -1, -1)
    return dmol._DMOLLogProb.apply(p, x, params.shape[1] // 10).exp().view(256, 256)


def test_each_channel_distribution_sums_to_one_for_a_fixed_context():
    """For one pixel's mixture, sum the code's P(r, g, b): over B it gives P(r, g) and over G and B it gives
    P(r), both equal to the mixture of independently computed per-component channel distributions
    sum_k pi_k p_k(r) [p_k(g | r)], each of which sums to 1 over its 256 values.  (Only up to 1e-6: like the TF
    code, bins of mass below 1e-5 use the density at the bin centre, which is not exactly the bin's mass.)"""
    k = 2
    params, _ = random_case(3, 1, k, 1, 1)
    params[:, k:].view(1, 3, 3, k, 1, 1)[:, :, 1] = torch.tensor([[-2.5, -3.5], [-3.0, -2.0], [-4.0, -1.5]])[
        ..., None, None]
    p = params.double().numpy()[0, :, 0, 0]
    pi = np.exp(log_softmax(p[:k]))
    rest = p[k:].reshape(3, 3, k)
    v = np.arange(256) / 127.5 - 1.0
    p_r = np.exp(reference_channel(v[:, None], rest[0, 0][None], rest[0, 1][None])[0])          # (R, K)
    mu_g = rest[1, 0][None, None] + np.tanh(rest[0, 2])[None, None] * v[:, None, None]          # (R, 1, K)
    p_g = np.exp(reference_channel(v[None, :, None], mu_g, rest[1, 1][None, None])[0])          # (R, G, K)
    np.testing.assert_allclose(p_r.sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(p_g.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose((p_r * pi).sum(), 1.0, atol=1e-6)
    for r in (0, 1, 70, 127, 128, 200, 254, 255):
        grid = _pixel_grid_probs(params, r).numpy()                                             # (G, B)
        np.testing.assert_allclose(grid.sum(1), np.einsum("k,k,gk->g", pi, p_r[r], p_g[r]), atol=1e-8, rtol=1e-6)
        assert grid.sum() == pytest.approx((pi * p_r[r]).sum(), rel=1e-6, abs=1e-8)


def test_analytic_gradient_passes_gradcheck_in_all_branches():
    params, x = random_case(4, 2, 2, 3, 3)
    params = params.double().requires_grad_(True)
    x = x.double().requires_grad_(True)
    _, branches, _ = reference_log_prob(params.detach().numpy(), x.detach().numpy())
    assert set(np.unique(branches)) == {0, 1, 2, 3}
    assert torch.autograd.gradcheck(lambda p, xx: dmol._DMOLLogProb.apply(p, xx, 2), (params, x), atol=1e-5)


def test_gradient_matches_float64_and_the_plain_loss_autograd_when_well_conditioned():
    """Bins of comfortable mass (broad scales, no 0/255 values): float32 gradients agree to rounding.  (Near the
    1e-5 branch threshold the likelihood is discontinuous, and float32 and float64 may pick different branches;
    the float64 gradcheck above covers every branch.)"""
    g = torch.Generator().manual_seed(5)
    x = torch.randint(1, 255, (3, 3, 6, 6), generator=g).float() / 127.5 - 1.0
    params = torch.randn(3, 50, 6, 6, generator=g) * 0.2
    rest = params[:, 5:].view(3, 3, 3, 5, 6, 6)
    rest[:, :, 0] += x[:, :, None]                                      # means near the pixel values
    rest[:, :, 1] = torch.rand(3, 3, 5, 6, 6, generator=g) - 1.5        # scales 0.22 .. 0.61
    upstream = torch.rand(3, generator=g)

    def grad(fn, dtype):
        p = params.to(dtype, copy=True).requires_grad_(True)
        (fn(p, x.to(dtype)) * upstream.to(dtype)).sum().backward()
        return p.grad.double()

    truth = grad(lambda p, xx: plain_log_prob(xx, p), torch.float64)
    scale = float(truth.abs().max())
    for got in (grad(dmol.log_prob, torch.float32), grad(lambda p, xx: plain_log_prob(xx, p), torch.float32)):
        torch.testing.assert_close(got, truth, rtol=1e-4, atol=1e-5 * scale)


def test_likelihood_stays_float32_under_bf16_autocast():
    params, x = random_case(6, 2, 3, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = dmol.log_prob(params.bfloat16(), x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, dmol.log_prob(params.bfloat16().float(), x))


def test_channels_last_params_give_the_same_values():
    params, x = random_case(7, 2, 3, 4, 4)
    torch.testing.assert_close(dmol.log_prob(params.contiguous(memory_format=torch.channels_last), x),
                               dmol.log_prob(params, x))


def test_bits_per_dim():
    ll = torch.tensor([-3072 * math.log(2.0) * 3.0])
    assert bits_per_dim(ll, 3072).item() == pytest.approx(3.0)
    params, x = random_case(8, 2, 2, 4, 4)
    torch.testing.assert_close(bits_per_dim(dmol.log_prob(params, x), 48), -dmol.log_prob(params, x) / (48 * math.log(2.0)))


def test_shape_errors_are_one_clear_error():
    with pytest.raises(OEError, match="10\\*K"):
        dmol.log_prob(torch.zeros(1, 25, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(OEError, match="do not match"):
        dmol.log_prob(torch.zeros(2, 20, 4, 4), torch.zeros(2, 3, 4, 8))


def test_samples_follow_the_mixture():
    """Samples of one pixel, rounded to the 8-bit grid, have the frequencies the likelihood gives: the red
    marginal, and green given the (coupled) red value."""
    k = 2
    params = torch.zeros(1, 10 * k, 1, 1)
    params[0, :k, 0, 0] = torch.tensor([0.0, 1.0])                          # pi = (0.27, 0.73)
    rest = params[:, k:].view(1, 3, 3, k, 1, 1)
    rest[0, :, 0, :, 0, 0] = torch.tensor([[-0.5, 0.4], [0.1, -0.2], [0.0, 0.3]])
    rest[0, :, 1] = -2.5
    rest[0, 0, 2, :, 0, 0] = torch.tensor([0.8, -0.6])                     # alpha: G follows R
    n = 40000
    gen = torch.Generator().manual_seed(0)
    s = dmol.sample(params.expand(n, -1, -1, -1), gen)
    assert s.shape == (n, 3, 1, 1) and s.abs().max() <= 1.0
    vals = torch.round((s[:, :, 0, 0] + 1) * 127.5).long()
    bins = torch.linspace(0, 255, 9).long()                                 # compare on 8 coarse bins of R
    freq = torch.histc(vals[:, 0].float(), bins=8, min=0, max=256).double() / n
    v = np.arange(256) / 127.5 - 1.0
    pp = params.double().numpy()[0, :, 0, 0]
    pi = np.exp(log_softmax(pp[:k]))
    rr = pp[k:].reshape(3, 3, k)
    p_r = (np.exp(reference_channel(v[:, None], rr[0, 0][None], rr[0, 1][None])[0]) * pi).sum(1)
    expect = np.array([p_r[a:b].sum() for a, b in zip(range(0, 256, 32), range(32, 257, 32))])
    np.testing.assert_allclose(freq.numpy(), expect, atol=0.01)
    assert len(bins) == 9
    # coupling: among samples from component 1's region, G tracks R with slope alpha_1 = tanh(-0.6) < 0
    corr = np.corrcoef(s[:, 0, 0, 0].numpy(), s[:, 1, 0, 0].numpy())[0, 1]
    assert corr < -0.2
