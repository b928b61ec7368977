"""The VAE family: the importance-weighted bound against a closed-form log p(x), the decoder's distribution over
the 256 values, fixed evaluation draws, and bad input."""
from __future__ import annotations

import math

import pytest
import torch

from density_oe.archs import ARCHS
from density_oe.vae import VAE, VAEConfig
from density_oe.vae import decoder as likelihood
from density_oe.vae.bounds import gaussian_kl
from oe_core.errors import ConfigError, OEError
from tests.vae_toys import LinearEncoder, LinearGaussianVAE, images, linear_data, tiny_vae


def bound_draws(model, x, k: int, draws: int, seed: int = 0) -> torch.Tensor:
    """``draws`` independent estimates of ``L_K(x)``: ``(draws, B)``."""
    g = torch.Generator().manual_seed(seed)
    mu, logvar = model.encode(x)
    with torch.no_grad():
        return torch.stack([model.bound(x, mu, logvar, model.draws(k, mu, g)) for _ in range(draws)])


def test_exact_posterior_makes_every_importance_weight_p_x():
    """With q(z|x) the true posterior, w = p(x, z) / q(z|x) = p(x) for every z: L_K = log p(x) exactly, for any
    draw (checks the signs and constants of log p(z), log q(z|x) and the reparameterisation)."""
    model = LinearGaussianVAE()
    x = linear_data(5)
    est = bound_draws(model, x, k=3, draws=4)
    torch.testing.assert_close(est, model.exact_log_prob(x).expand_as(est), rtol=0, atol=1e-10)
    # the K = 1 ELBO uses the analytic KL: exact only in expectation
    elbo = bound_draws(model, x, k=1, draws=4000).mean(0)
    torch.testing.assert_close(elbo, model.exact_log_prob(x), rtol=0, atol=0.05)


def test_iwae_bound_is_below_log_p_and_tightens_with_k_on_a_poor_encoder():
    """A deliberately poor diagonal encoder: E[L_K] <= log p(x), E[L_K] does not fall as K grows, and the gap to
    the closed-form log p(x) shrinks towards 0."""
    base = LinearGaussianVAE()
    exact = base.exact_encoder()
    poor = LinearEncoder(exact.a.detach() * 0.5, exact.c.detach() + 0.3, exact.logvar.detach() + 1.0)
    model = LinearGaussianVAE(poor)
    x = linear_data(4, seed=1)
    log_p = model.exact_log_prob(x)
    means, ses = [], []
    for k in (1, 2, 8, 64, 512):
        est = bound_draws(model, x, k=k, draws=400, seed=k)
        means.append(est.mean(0))
        ses.append(est.std(0) / math.sqrt(len(est)))
        assert bool((means[-1] <= log_p + 3 * ses[-1]).all()), (k, means[-1] - log_p)
    for lo, hi, se_lo, se_hi in zip(means, means[1:], ses, ses[1:]):
        assert bool((hi >= lo - 3 * (se_lo + se_hi)).all())
    gap_1, gap_512 = log_p - means[0], log_p - means[-1]
    assert bool((gap_1 > 0.3).all())                       # the poor encoder leaves a real ELBO gap
    assert bool((gap_512 < 0.05 * gap_1).all())            # ... that K = 512 nearly closes


def test_analytic_kl_is_the_gaussian_kl():
    mu, logvar = torch.randn(2, 3, 2, 2, dtype=torch.float64), torch.randn(2, 3, 2, 2, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).flatten(1).sum(1))


def _logistic_cdf(t: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(t)


def test_decoder_probabilities_over_the_256_values_sum_to_one_for_every_sub_pixel():
    g = torch.Generator().manual_seed(0)
    mean = torch.rand(2, 3, 4, 4, generator=g) * 3 - 1.5
    log_scale = torch.rand(2, 3, 4, 4, generator=g) * 8 - 7       # scales from exp(-7) (sharper than a bin) to e
    mean[0, 0, 0, 0], log_scale[0, 0, 0, 0] = 1.0, -7.0            # all the mass at value 255
    out = torch.cat([mean, log_scale], dim=1)
    values = torch.arange(256.0).view(256, 1, 1, 1, 1) / 127.5 - 1
    x = values.expand(256, 2, 3, 4, 4)
    lp = torch.stack([likelihood.sub_pixel_log_prob(out, x[v]) for v in range(256)])      # (256, 2, 3, 4, 4)
    total = lp.double().exp().sum(0)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=2e-4)
    # the bins are the logistic's masses (edge bins to -inf and +inf), from the formula in float64
    m, s = mean.double(), log_scale.double().exp()
    upper = torch.where(values < 0.999, _logistic_cdf((values.double() + 1 / 255 - m) / s), torch.ones(()))
    lower = torch.where(values > -0.999, _logistic_cdf((values.double() - 1 / 255 - m) / s), torch.zeros(()))
    mass = upper - lower
    used = mass > 1e-5                                            # the DMOL's own threshold for the exact mass
    # float32 differences of sigmoids near 1: absolute errors up to ~2e-7
    torch.testing.assert_close(lp.double().exp()[used], mass[used], rtol=1e-4, atol=5e-7)
    # the image log-likelihood (the DMOL kernel) is the sum of the sub-pixel terms
    for v in (0, 77, 255):
        torch.testing.assert_close(likelihood.log_prob(out, x[v]), lp[v].sum((1, 2, 3)), rtol=1e-5, atol=1e-3)


def test_decoder_is_factorised_no_channel_coupling():
    """Changing R does not change the log-probability of G and B (a DMOL coupling would)."""
    out = torch.randn(1, 6, 2, 2)
    x = images(1, size=2)
    x2 = x.clone()
    x2[:, 0] = -x2[:, 0]
    a, b = likelihood.sub_pixel_log_prob(out, x), likelihood.sub_pixel_log_prob(out, x2)
    assert torch.equal(a[:, 1:], b[:, 1:]) and not torch.equal(a[:, 0], b[:, 0])


def test_scores_do_not_depend_on_the_batch():
    model = tiny_vae().eval()
    model.iw_samples = 6
    model.decode_images = 36                                       # 6 samples in passes of 4 and 2 (B = 9)
    x = images(9)
    with torch.no_grad():
        whole = model.log_prob(x)
        parts = torch.cat([model.log_prob(x[:4]), model.log_prob(x[4:])])
        reversed_ = model.log_prob(x.flip(0)).flip(0)
        single = model.log_prob(x[3:4])
        model.decode_images = 10 ** 6
        unchunked = model.log_prob(x)
    for other in (parts, reversed_, unchunked):
        torch.testing.assert_close(other, whole, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(single, whole[3:4], rtol=1e-5, atol=1e-3)
    assert whole.unique().numel() == 9                              # the images do get different scores


def test_training_mode_draws_fresh_noise_and_eval_mode_a_fixed_draw():
    model = tiny_vae()
    x = images(3)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))


def test_log_prob_is_the_forward_output_and_nats_per_image():
    model = tiny_vae(vae_iw_samples=3).eval()
    x = images(2)
    with torch.no_grad():
        out = model(x)
        assert model.iw_samples == 3 and torch.equal(model.log_prob(x, out=out), out)
        assert out.shape == (2,) and bool((out < 0).all())


def test_sample_gives_images_on_the_8_bit_grid():
    model = tiny_vae().eval()
    g = torch.Generator().manual_seed(1)
    x = model.sample(3, 8, 8, 1.0, g)
    k = (x + 1) * 127.5
    assert x.shape == (3, 3, 8, 8) and torch.allclose(k, k.round(), rtol=0, atol=1e-4) and float(k.min()) >= 0 and float(k.max()) <= 255
    with pytest.raises(OEError, match="samples sizes that are multiples of 4"):
        model.sample(1, 6, 8)


def test_bad_config_and_input():
    with pytest.raises(ConfigError, match="--vae-iw-samples must be >= 1, got 0"):
        VAEConfig(vae_iw_samples=0).validate()
    with pytest.raises(ConfigError, match="--vae-latent must be >= 1"):
        VAE(VAEConfig(vae_latent=0))
    model = tiny_vae()
    with pytest.raises(OEError, match=r"multiples of 4 \(its latent map is H/4 x W/4\), got \(1, 3, 6, 8\)"):
        model(torch.zeros(1, 3, 6, 8))


def test_the_vae_is_registered_with_the_paper_defaults():
    arch = ARCHS.get("vae")
    cfg = arch.config({"vae_levels": 2, "vae_hidden": 4})
    assert isinstance(arch.build(cfg), VAE) and arch.multiple(cfg) == 4
    default = VAEConfig()
    assert default.vae_iw_samples == 1 and default.multiple == 8      # the ELBO; 32x32 -> a 4x4 latent map
