"""DMOL sampling against the distribution's definition: Gumbel-max picks component k with probability
softmax(logits)_k, each channel is a logistic draw around its coupled mean (R, then G from the clipped R, then B
from the clipped R and G), clipped to [-1, 1]; and the small paths of ``log_prob`` (the compile path,
error texts)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from density_oe.pixelcnn import dmol
from oe_core.errors import OEError

# a logistic at the smallest scale exp(-7) moves a draw by at most exp(-7) * logit(1 - 1e-5) = 0.0105
NARROW = -7.0
MAX_NOISE = math.exp(NARROW) * math.log((1 - 1e-5) / 1e-5)


def one_component(means, log_scales, raw_coefs, h: int = 2, w: int = 3) -> torch.Tensor:
    """(1, 10, H, W) params of one component, the same at every position."""
    rest = torch.tensor([means, log_scales, raw_coefs], dtype=torch.float32).T       # (channel, kind)
    params = torch.cat([torch.zeros(1), rest.reshape(-1)])
    return params.view(1, 10, 1, 1).expand(1, 10, h, w).contiguous()


def test_narrow_samples_are_the_coupled_means_from_the_previous_clipped_channels():
    """mu_G = m_G + alpha R and mu_B = m_B + beta R + gamma G, with the sampled (clipped) R and G; alpha, beta,
    gamma = tanh(raw).  Positions of a (4, 3, 2, 3) batch each keep their own parameters."""
    alpha, beta, gamma = 0.5, -0.7, 0.3
    raw = [math.atanh(alpha), math.atanh(beta), math.atanh(gamma)]
    cases = [(0.3, 0.1, -0.2),            # interior: the coupled means themselves
             (1.6, -0.1, 0.9),            # R clipped at 1 before it enters G and B
             (-1.5, 0.2, -0.6)]           # R clipped at -1
    for means in cases:
        params = one_component(means, [NARROW] * 3, raw)
        s = dmol.sample(params.expand(4, -1, -1, -1), torch.Generator().manual_seed(1))
        assert s.shape == (4, 3, 2, 3)
        r = min(max(means[0], -1.0), 1.0)
        g = means[1] + alpha * r
        b = means[2] + beta * r + gamma * g
        tol = MAX_NOISE * (1 + abs(alpha) + abs(beta) + abs(gamma) * (1 + abs(alpha)))
        for c, expect in enumerate((r, g, b)):
            assert (s[:, c] - expect).abs().max() <= tol, (means, c, s[:, c].flatten()[:4], expect)
    # different parameters per position: position (0, 0) interior, position (1, 2) far above 1
    params = one_component((0.3, 0.1, -0.2), [NARROW] * 3, [0.0] * 3)
    params[0, [1, 4, 7], 1, 2] = 5.0                 # the three means
    s = dmol.sample(params, torch.Generator().manual_seed(2))
    np.testing.assert_allclose(s[0, :, 0, 0].numpy(), [0.3, 0.1, -0.2], atol=MAX_NOISE)
    assert (s[0, :, 1, 2] == 1.0).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_channel_is_clipped_to_exactly_the_pixel_range(sign):
    """Means far outside [-1, 1], pushed further by the coupling (alpha = beta = gamma = 0.9 at +-3): every
    sample is exactly the bound, never beyond it and never pulled inside (e.g. -1 for +1)."""
    raw = [math.atanh(0.9)] * 3
    params = one_component([3.0 * sign] * 3, [NARROW] * 3, raw)
    s = dmol.sample(params.expand(8, -1, -1, -1), torch.Generator().manual_seed(3))
    assert (s == sign).all(), s.unique()


def test_broad_samples_stay_inside_the_pixel_range_on_both_sides():
    """A broad logistic (s = e^0 = 1) centred at 0 puts about 27% of the mass beyond each bound: those draws are
    clipped to -1 and 1, all channels."""
    params = one_component([0.0] * 3, [0.0] * 3, [0.0] * 3, h=1, w=1)
    s = dmol.sample(params.expand(4000, -1, -1, -1), torch.Generator().manual_seed(4))
    assert s.min() == -1.0 and s.max() == 1.0
    at_bounds = ((s == 1.0) | (s == -1.0)).double().mean(dim=(0, 2, 3))
    expect = 2 / (1 + math.e)                                  # P(|L| > 1) for a standard logistic
    np.testing.assert_allclose(at_bounds.numpy(), expect, atol=0.04)


def test_gumbel_max_picks_each_component_with_its_softmax_probability():
    """Three narrow components at -0.6, 0 and 0.6 with logits (0, 1, -0.5): the share of samples near each mean
    is softmax(logits) (4 sigma of 24000 draws), on a 2 x 3 image, every position alike."""
    k = 3
    logits = np.array([0.0, 1.0, -0.5])
    params = torch.zeros(1, 10 * k, 2, 3)
    params[0, :k] = torch.tensor(logits, dtype=torch.float32)[:, None, None]
    rest = params[:, k:].view(1, 3, 3, k, 2, 3)
    rest[0, :, 0] = torch.tensor([-0.6, 0.0, 0.6])[None, :, None, None]
    rest[0, :, 1] = NARROW
    n = 4000
    s = dmol.sample(params.expand(n, -1, -1, -1), torch.Generator().manual_seed(5))
    picked = torch.round(s / 0.6).long() + 1                       # 0, 1, 2 = the component of each sub-pixel
    assert ((s - (picked - 1) * 0.6).abs() <= MAX_NOISE).all()
    assert (picked == picked[:, :1]).all()                       # the three channels come from one component
    share = torch.bincount(picked[:, 0].flatten(), minlength=k).double().numpy() / (n * 6)
    np.testing.assert_allclose(share, softmax(logits), atol=4 * math.sqrt(0.25 / (n * 6)))


def test_log_scales_below_minus_seven_are_clamped():
    """A log-scale of -20 draws with the spread of exp(-7), as the likelihood clamps it."""
    params = one_component([0.0] * 3, [-20.0] * 3, [0.0] * 3, h=1, w=1)
    s = dmol.sample(params.expand(4000, -1, -1, -1), torch.Generator().manual_seed(6))
    spread = s.std().item()
    assert spread == pytest.approx(math.exp(NARROW) * math.pi / math.sqrt(3), rel=0.1)


def test_samples_are_reproducible_from_the_generator_alone():
    """The same seed gives the same samples, whatever the global RNG or the default dtype; another seed does not."""
    params = one_component([0.1, 0.2, 0.3], [-2.0] * 3, [0.4, 0.1, -0.3])
    a = dmol.sample(params, torch.Generator().manual_seed(7))
    default = torch.get_default_dtype()
    with torch.random.fork_rng():                 # the global RNG moved, and restored afterwards
        torch.manual_seed(123)
        torch.set_default_dtype(torch.float64)
        try:
            b = dmol.sample(params, torch.Generator().manual_seed(7))
        finally:
            torch.set_default_dtype(default)
    assert a.dtype == b.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, dmol.sample(params, torch.Generator().manual_seed(8)))


def test_the_compile_path_gives_the_kernels_values(monkeypatch):
    """Under torch.compile, ``log_prob`` takes the traced expression; it gives the kernel's values (float32)."""
    g = torch.Generator().manual_seed(9)
    params = torch.randn(2, 20, 3, 3, generator=g)
    x = torch.randint(0, 256, (2, 3, 3, 3), generator=g).float() / 127.5 - 1.0
    eager = dmol.log_prob(params, x)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced = dmol.log_prob(params.double(), x.double())
    assert traced.dtype == torch.float32
    torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-3)


def test_integer_images_are_one_clear_error():
    with pytest.raises(OEError, match="must be floats in \\[-1, 1\\], got dtype torch.int64"):
        dmol.log_prob(torch.zeros(1, 10, 2, 2), torch.zeros(1, 3, 2, 2, dtype=torch.int64))


def test_the_gradient_with_respect_to_the_images_alone():
    """Parameters without gradients (a fixed model scoring inputs): the kernel's gradient with respect to the
    images equals autograd's through the traced expression, float64."""
    g = torch.Generator().manual_seed(10)
    params = torch.randn(2, 20, 3, 3, generator=g, dtype=torch.float64)
    params[:, 2:].view(2, 3, 3, 2, 3, 3)[:, :, 1] = -1.0                  # broad scales: well-conditioned bins
    x = (torch.randint(1, 255, (2, 3, 3, 3), generator=g).double() / 127.5 - 1.0)
    grads = []
    for fn in (dmol._DMOLLogProb.apply, dmol._log_prob_traced):
        xx = x.clone().requires_grad_(True)
        fn(params, xx, 2).sum().backward()
        grads.append(xx.grad)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9)
