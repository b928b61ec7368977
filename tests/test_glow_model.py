"""Glow: exact invertibility, log-determinants against autograd Jacobians, actnorm init, likelihood, sampling."""
from __future__ import annotations

import math

import pytest
import torch

from density_oe.glow import Glow, GlowConfig, data_dependent_init
from density_oe.glow.layers import ActNorm, Conv2dZeros, InvConv1x1, squeeze, unsqueeze
from density_oe.losses import oe_density_loss
from oe_core.errors import OEError

TINY = dict(glow_levels=2, glow_steps=2, glow_hidden=6)


def grid_images(n: int, size: int = 4, seed: int = 0) -> torch.Tensor:
    """Smooth-ish 8-bit images in [-1, 1] (correlated channels and pixels, so the flow has something to learn)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 1, 1, generator=g) * 200 + 20
    grad = torch.linspace(-20, 20, size).view(1, 1, 1, size) * torch.rand(n, 1, 1, 1, generator=g)
    col = torch.tensor([0.0, 10.0, -10.0]).view(1, 3, 1, 1)
    k = (base + grad + col + torch.randn(n, 3, size, size, generator=g) * 3).round().clamp(0, 255)
    return k / 127.5 - 1


def randomized(cfg: GlowConfig, dtype=torch.float64, seed: int = 0) -> Glow:
    """A Glow whose zero-initialised layers and actnorms hold random values (so no layer is the identity)."""
    torch.manual_seed(seed)
    model = Glow(cfg).to(dtype)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (Conv2dZeros, ActNorm)):
                for p in m.parameters():
                    p.normal_(0, 0.2)
        model.top_prior.normal_(0, 0.2)
    return model


def flat_latents(model: Glow, y: torch.Tensor):
    latents: list = []
    z, logdet, _ = model.encode(y, latents)
    return torch.cat([t.flatten(1) for t in latents] + [z.flatten(1)], dim=1), logdet, latents, z


@pytest.mark.parametrize("lu", [True, False])
@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_log_determinant_equals_autograd_jacobian(lu, coupling):
    model = randomized(GlowConfig(**TINY, glow_lu=lu, glow_coupling=coupling))
    y = torch.rand(1, 3, 4, 4, dtype=torch.float64) - 0.5
    jac = torch.autograd.functional.jacobian(lambda t: flat_latents(model, t)[0], y).reshape(48, 48)
    expected = torch.linalg.slogdet(jac)[1]
    got = flat_latents(model, y)[1]
    assert got.item() == pytest.approx(expected.item(), abs=1e-8)
    assert abs(expected.item()) > 1.0  # a non-trivial volume change


def test_affine_coupling_log_det_stays_finite_where_the_sigmoid_underflows():
    """A trained mini Glow drove one Rademacher image to h = -11553 in a coupling: sigmoid(h + 2) is 0 in float32
    and log(0) made its bpd inf.  The log-det is logsigmoid(h + 2): -h - 2 - log1p(exp(h + 2)) -> about h + 2."""
    from density_oe.glow.coupling import Coupling
    layer = Coupling(4, 6, "affine")
    with torch.no_grad():
        layer.net.out.conv.bias[1::2] = -500.0  # the scale half of h; the shift half stays 0
    x = torch.randn(2, 4, 3, 3)
    out, logdet = layer(x, torch.zeros(2))
    assert torch.isfinite(logdet).all() and torch.isfinite(out).all()
    assert logdet.tolist() == pytest.approx([-498.0 * 2 * 3 * 3] * 2, rel=1e-6)
    # where the sigmoid does not underflow, the same numbers as log(sigmoid)
    with torch.no_grad():
        layer.net.out.conv.bias[1::2] = -3.0
    _, logdet = layer(x, torch.zeros(2))
    expected = torch.log(torch.sigmoid(torch.tensor(-1.0))) * 2 * 3 * 3
    assert logdet.tolist() == pytest.approx([expected.item()] * 2, rel=1e-6)


@pytest.mark.parametrize("lu", [True, False])
def test_flow_inverts_to_1e_5_in_float32(lu):
    model = randomized(GlowConfig(glow_levels=3, glow_steps=3, glow_hidden=8, glow_lu=lu), dtype=torch.float32)
    y = torch.rand(5, 3, 8, 8) - 0.5
    _, _, latents, z = flat_latents(model, y)
    with torch.no_grad():
        back = model.decode(z, latents=latents)
    assert (back - y).abs().max().item() < 1e-5


def test_squeeze_groups_sub_pixels_channel_major_and_inverts():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 2)
    assert s[0, 4 * 1 + 2 * 1 + 0, 1, 0].item() == x[0, 1, 3, 0].item()  # channel 1, sub-pixel (1, 0)
    assert torch.equal(unsqueeze(s), x)


def test_data_dependent_init_gives_every_actnorm_zero_mean_and_unit_variance():
    torch.manual_seed(0)
    model = Glow(GlowConfig(**TINY)).eval()
    x = grid_images(64, 8)
    data_dependent_init(model, x)
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: outputs.append(out[0] if isinstance(out, tuple) else out))
             for m in model.modules() if isinstance(m, ActNorm)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert len(outputs) == 2 * 2 * 3  # per step: the flow's actnorm and the coupling network's two
    for out in outputs:
        assert out.mean(dim=(0, 2, 3)).abs().max().item() < 1e-4
        assert (out.var(dim=(0, 2, 3), unbiased=False) - 1).abs().max().item() < 1e-3


def test_eval_log_prob_is_deterministic_and_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = Glow(GlowConfig(**TINY)).eval()
    x = grid_images(6, 8)
    data_dependent_init(model, x)
    with torch.no_grad():
        full = model.log_prob(x)
        assert torch.allclose(model.log_prob(x[2:3]), full[2:3], rtol=0, atol=1e-3)
        assert torch.equal(model.log_prob(x), full)
        model.train()
        assert not torch.equal(model.log_prob(x), full)  # fresh dequantisation noise while training


def test_log_prob_is_log_density_of_dequantised_image_minus_bin_volume():
    model = randomized(GlowConfig(**TINY), dtype=torch.float32)
    x = grid_images(3, 4)
    noise = torch.rand_like(x)
    k = (x + 1) * 127.5
    y = (k.round() + noise) / 256 - 0.5
    z, logdet, log_pz = model.encode(y)
    mean, logs = model.top_prior.chunk(2, dim=1)
    log_top = (-0.5 * (math.log(2 * math.pi) + 2 * logs + (z - mean) ** 2 * torch.exp(-2 * logs))).flatten(1).sum(1)
    expected = log_pz + log_top + logdet - 48 * math.log(256)
    assert torch.allclose(model(x, noise=noise), expected, atol=1e-3)


def test_a_tiny_trained_glow_beats_the_uniform_8_bits_per_dim():
    torch.manual_seed(0)
    model = Glow(GlowConfig(glow_levels=2, glow_steps=2, glow_hidden=8))
    x, held = grid_images(32, 8, seed=1), grid_images(64, 8, seed=2)
    data_dependent_init(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def held_out_bpd() -> float:
        model.eval()
        with torch.no_grad():
            return (-model(held) / (held[0].numel() * math.log(2))).mean().item()

    before = held_out_bpd()
    model.train()
    for _ in range(20):
        opt.zero_grad()
        (-model(x)).mean().backward()
        opt.step()
    after = held_out_bpd()
    assert after < 8.0 and after < before - 0.8  # uniform over 256 levels is exactly 8 bits/dim


def test_oe_margin_loss_on_glow_equals_the_hand_formula():
    model = randomized(GlowConfig(**TINY), dtype=torch.float32).eval()
    x_in, x_out = grid_images(3, 4, seed=3), grid_images(4, 4, seed=4).flip(1)
    d = 48 * math.log(2)
    with torch.no_grad():
        bpd_in, bpd_out = -model(x_in) / d, -model(x_out) / d
    m, lam = 0.7, 0.5
    hinge = sum(max(0.0, m + float(bi) - float(bo)) for bi in bpd_in for bo in bpd_out) / 12
    expected = float(bpd_in.mean()) + lam * hinge
    assert 0 < hinge  # some pairs are inside the margin
    assert oe_density_loss(bpd_in, bpd_out, m, lam).item() == pytest.approx(expected, rel=1e-6)


def test_samples_are_on_the_8_bit_grid_reproducible_and_temperature_zero_is_the_mean():
    model = randomized(GlowConfig(**TINY), dtype=torch.float32).eval()
    draw = lambda t, s: model.sample(3, 8, 8, temperature=t, generator=torch.Generator().manual_seed(s))
    a = draw(0.7, 1)
    assert a.shape == (3, 3, 8, 8) and torch.equal(a, draw(0.7, 1)) and not torch.equal(a, draw(0.7, 2))
    k = (a + 1) * 127.5
    assert torch.allclose(k, k.round(), atol=1e-4) and k.min() >= 0 and k.max() <= 255
    cold = draw(0.0, 1)
    assert torch.equal(cold[0], cold[1]) and torch.equal(cold, draw(0.0, 2))


def test_bad_shapes_are_one_clear_error():
    model = Glow(GlowConfig(**TINY))
    with pytest.raises(OEError, match="multiples of 4"):
        model(torch.zeros(1, 3, 6, 6))
    with pytest.raises(OEError, match="multiples of 4"):
        model.sample(1, 6, 8)


def test_lu_weight_is_orthogonal_at_init_and_plain_log_det_is_float64():
    torch.manual_seed(0)
    conv = InvConv1x1(6, lu=True)
    w = conv.weight_matrix(torch.float64)
    assert torch.allclose(w @ w.T, torch.eye(6, dtype=torch.float64), atol=1e-5)
    plain = InvConv1x1(6, lu=False)
    assert plain.log_abs_det(torch.float32).item() == pytest.approx(0.0, abs=1e-5)


def test_paper_config_has_44_million_parameters():
    def count(k: int) -> int:
        return sum(p.numel() for p in Glow(GlowConfig(glow_steps=k)).parameters())
    one, two = count(1), count(2)
    assert 44.0e6 < one + 31 * (two - one) < 44.3e6  # parameters are linear in K; the paper's K = 32


def test_bf16_autocast_leaves_the_flow_in_float32_and_channels_last_changes_nothing():
    model = randomized(GlowConfig(**TINY), dtype=torch.float32).eval()
    x = grid_images(4, 8)
    with torch.no_grad():
        full = model.log_density(model.dequantize(x)) - 192 * math.log(256)   # float32, no autocast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.allclose(model(x), full, rtol=0, atol=1e-3)
        assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), full, atol=1e-3)
