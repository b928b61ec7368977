"""The diffusion family's bound held to independent math: closed forms, brute-force sums, quadrature over t, and
Gaussian data whose optimal denoiser is known, where the bound must meet the exact discrete log-likelihood."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from density_oe.diffusion import Diffusion, DiffusionConfig
from density_oe.diffusion.draws import draws, image_keys

TINY = dict(diffusion_channels=8, diffusion_levels=2, diffusion_blocks=1, diffusion_dropout=0.0)
G_MIN, G_MAX = -13.3, 5.0          # VDM configs/cifar10.py


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def randomized(seed: int = 0, **cfg) -> Diffusion:
    """A float64 diffusion whose zero-initialised output layer holds random values (so eps_hat depends on t)."""
    torch.manual_seed(seed)
    model = Diffusion(DiffusionConfig(**{**TINY, **cfg})).double().eval()
    with torch.no_grad():
        model.net.conv_out.weight.normal_(0, 0.3)
    return model


def images(n: int, size: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).double() / 127.5 - 1


def values() -> np.ndarray:
    """VDM's encoded 8-bit values f_v = (2v + 1)/256 - 1."""
    return (2 * np.arange(256) + 1) / 256 - 1


# ------------------------------------------------------------------------------------------- the paper's defaults

def test_defaults_are_vdm_cifar10_endpoints_and_derived_values():
    cfg = DiffusionConfig()
    assert (cfg.diffusion_gamma_min, cfg.diffusion_gamma_max) == (G_MIN, G_MAX)
    assert cfg.diffusion_dropout == 0.1 and cfg.diffusion_timesteps == 0 and cfg.diffusion_train_t_samples == 1
    assert math.sqrt(sigmoid(G_MIN)) == pytest.approx(1.29e-3, rel=5e-3)      # sigma_0 (reference table)
    assert sigmoid(-G_MAX) == pytest.approx(6.7e-3, rel=5e-3)                 # alpha_1^2


# ------------------------------------------------------------------------------------------------ prior KL at t=1

def test_prior_kl_equals_the_numerically_integrated_kl():
    """KL(N(alpha_1 f, sigma_1^2) || N(0, 1)) integrated on a fine grid, summed over sub-pixels."""
    model = randomized()
    x = images(2)
    got = model.prior_kl(((torch.round((x + 1) * 127.5) * 2 + 1) / 256 - 1))
    a1, s1 = math.sqrt(sigmoid(-G_MAX)), math.sqrt(sigmoid(G_MAX))
    grid = np.linspace(-12, 12, 400001)
    dz = grid[1] - grid[0]
    log_p = -0.5 * grid ** 2 - 0.5 * math.log(2 * math.pi)
    for b in range(2):
        k = np.round((x[b].numpy().ravel() + 1) * 127.5).astype(int)
        total = 0.0
        for f in np.unique(values()[k]):
            log_q = -0.5 * ((grid - a1 * f) / s1) ** 2 - math.log(s1) - 0.5 * math.log(2 * math.pi)
            total += np.sum(np.exp(log_q) * (log_q - log_p)) * dz * np.sum(values()[k] == f)
        assert got[b].item() == pytest.approx(total, rel=1e-6)
    # the reference's number: 3.4e-3 nats per sub-pixel at |f| = 1
    one = model.prior_kl(torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert one.item() == pytest.approx(3.36e-3, rel=3e-3)


# --------------------------------------------------------------------------------------- reconstruction at t=0

def test_reconstruction_is_the_brute_force_256_value_sum():
    model = randomized()
    x = images(2, size=2)
    g = torch.Generator().manual_seed(1)
    eps0 = torch.randn(x.shape, generator=g, dtype=torch.float64) * 3   # wide noise: neighbours get mass too
    f = (torch.round((x + 1) * 127.5) * 2 + 1) / 256 - 1
    got = model.reconstruction(f, eps0)
    scale = math.exp(-G_MIN)                                             # exp(-gamma_0)
    for b in range(2):
        total = 0.0
        for fk, e in zip(f[b].flatten().tolist(), eps0[b].flatten().tolist()):
            zt = fk + math.exp(0.5 * G_MIN) * e
            logits = [-0.5 * scale * (zt - fv) ** 2 for fv in values()]
            m = max(logits)
            lse = m + math.log(sum(math.exp(v - m) for v in logits))
            true = int(round((fk + 1) * 128 - 0.5))
            total -= logits[true] - lse
        assert got[b].item() == pytest.approx(total, rel=1e-9)
    assert got.min().item() > 1.0                                        # the noise put real mass elsewhere


# ---------------------------------------------------------------- the diffusion term: t-estimator and discrete time

def integrand(model: Diffusion, f: torch.Tensor, eps: torch.Tensor, t: np.ndarray) -> np.ndarray:
    """1/2 gamma'(t) ||eps - eps_hat(z_t)||^2 at each t, written out from the VDM formulas (float64)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    gamma = G_MIN + (G_MAX - G_MIN) * t
    alpha, sigma = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()
    z = alpha.view(-1, 1, 1, 1) * f + sigma.view(-1, 1, 1, 1) * eps
    with torch.no_grad():
        e_hat = z + model.net(z, (gamma - G_MIN) / (G_MAX - G_MIN))
    return (0.5 * (G_MAX - G_MIN) * ((eps - e_hat) ** 2).flatten(1).sum(1)).numpy()


def quadrature(model, f, eps, panels: int) -> float:
    """Composite 8-point Gauss-Legendre over [0, 1] (the time embedding makes the integrand wiggle fast in t)."""
    u, w = np.polynomial.legendre.leggauss(8)
    left = np.arange(panels)[:, None] / panels
    t = (left + 0.5 * (u[None, :] + 1) / panels).ravel()
    return float(np.sum(np.tile(0.5 * w / panels, panels) * integrand(model, f, eps, t)))


@pytest.fixture(scope="module")
def one_image():
    model = randomized(seed=3)
    x = images(1, seed=5)
    f = (torch.round((x + 1) * 127.5) * 2 + 1) / 256 - 1
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    exact = quadrature(model, f, eps, 512)
    assert quadrature(model, f, eps, 256) == pytest.approx(exact, rel=1e-8)  # the quadrature has converged
    return model, x, f, eps, exact


def test_t_estimator_is_unbiased_against_quadrature_over_t(one_image):
    """Mean over many stratified draws of t (the model's own draws, eps held fixed) = the integral over t."""
    model, x, f, eps, exact = one_image
    k, n = 4, 600
    torch.manual_seed(11)
    t, _, _ = draws(x.expand(n, -1, -1, -1), k, fixed=False)               # n independent draws of K t's
    assert ((t >= torch.arange(k) / k) & (t < (torch.arange(k) + 1) / k)).all()   # stratified: one per stratum
    with torch.no_grad():
        est = model.diffusion_loss(f.expand(n, -1, -1, -1), t.double(), eps.expand(n, k, -1, -1, -1)).numpy()
    se = est.std(ddof=1) / math.sqrt(n)
    assert abs(est.mean() - exact) < 4 * se
    assert se < 0.01 * exact                                                # the test can tell a 4% bias apart


def test_discrete_time_bound_approaches_the_continuous_one(one_image):
    """E_t of the T-step loss (a sum over its T steps) -> the continuous integral, with an O(1/T) error."""
    model, x, f, eps, exact = one_image
    errors = []
    for steps in (128, 1024, 8192):
        m = Diffusion(DiffusionConfig(**TINY, diffusion_timesteps=steps)).double().eval()
        m.load_state_dict(model.state_dict())
        t = ((torch.arange(steps, dtype=torch.float64) + 0.5) / steps)[None, :]   # one t inside every step
        with torch.no_grad():
            discrete = m.diffusion_loss(f, t, eps.expand(1, steps, -1, -1, -1)).item()
        errors.append(abs(discrete - exact))
    for coarse, fine in zip(errors, errors[1:]):
        assert 6 < coarse / fine < 10                                       # O(1/T): 8x the steps, 8x smaller
    assert errors[-1] < 2e-3 * exact


# ----------------------------------------------------------------------------------- scores and the batch

def test_scores_are_invariant_to_batch_order_and_batch_size():
    torch.manual_seed(0)
    model = Diffusion(DiffusionConfig(**TINY, diffusion_t_samples=4)).eval()
    with torch.no_grad():
        model.net.conv_out.weight.normal_(0, 0.3)
    x = images(6).float()
    with torch.no_grad():
        whole = model.log_prob(x)
        singles = torch.cat([model.log_prob(x[i:i + 1]) for i in range(6)])
        reversed_ = model.log_prob(x.flip(0)).flip(0)
        mixed = model.log_prob(torch.cat([images(3, seed=9).float(), x[2:4]]))[3:]
        again = model.log_prob(x)
    torch.testing.assert_close(singles, whole, rtol=1e-5, atol=0)
    torch.testing.assert_close(reversed_, whole, rtol=1e-5, atol=0)
    torch.testing.assert_close(mixed, whole[2:4], rtol=1e-5, atol=0)
    assert torch.equal(again, whole)
    # the fixed draws differ between images and from training's fresh ones
    assert len(set(image_keys(x).tolist())) == 6
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


# ---------------------------------------------------- Gaussian data with its optimal denoiser: bound = exact log P

MU, S = 0.2, 0.25     # the data: every sub-pixel iid, P(k) = the N(MU, S^2) density at f_k, normalised


def data_log_probs() -> np.ndarray:
    log_w = -0.5 * ((values() - MU) / S) ** 2
    return log_w - np.logaddexp.reduce(log_w)


class OptimalDenoiser(nn.Module):
    """E[eps | z_t] for iid sub-pixels with P(k): eps_hat = (z - alpha E[f | z]) / sigma, returned as eps_hat - z
    (the model adds z back)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("f", torch.tensor(values()))
        self.register_buffer("log_p", torch.tensor(data_log_probs()))

    def forward(self, z, gamma01):
        gamma = (G_MIN + (G_MAX - G_MIN) * gamma01).view(-1, 1, 1, 1, 1)
        alpha, sigma = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()
        logits = self.log_p - (z.unsqueeze(-1) - alpha * self.f) ** 2 / (2 * sigma ** 2)
        mean = (torch.softmax(logits, -1) * self.f).sum(-1)
        return (z - alpha[..., 0] * mean) / sigma[..., 0] - z


def gauss_expect(fn, mean: float, std: float, nodes: int = 120) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return float(np.sum(w * fn(mean + std * x)) / math.sqrt(2 * math.pi))


def endpoint_corrections(k: int) -> tuple[float, float]:
    """The two per-sub-pixel terms by which the bound with the exact score differs from log P(k) (derivation in
    the test below): the prior's and the decoder's."""
    lp, f = data_log_probs(), values()
    a1, s1 = math.sqrt(sigmoid(-G_MAX)), math.sqrt(sigmoid(G_MAX))

    def log_q1_minus_prior(z):      # log q(z_1) - log N(z_1; 0, 1)
        comp = lp[None, :] - 0.5 * ((z[:, None] - a1 * f[None, :]) / s1) ** 2 - math.log(s1)
        return np.logaddexp.reduce(comp, axis=1) + 0.5 * z ** 2

    scale = math.exp(-G_MIN)

    def log_q_minus_log_p(zt):      # log q(k | z_0) - log p(k | z_0): the data prior P versus VDM's uniform one
        logits = -0.5 * scale * (zt[:, None] - f[None, :]) ** 2
        post = logits + lp[None, :]
        return (post[:, k] - np.logaddexp.reduce(post, axis=1)) - (logits[:, k] - np.logaddexp.reduce(logits, axis=1))

    c1 = gauss_expect(log_q1_minus_prior, a1 * f[k], s1)
    c0 = gauss_expect(log_q_minus_log_p, f[k], math.exp(0.5 * G_MIN), nodes=200)
    return c1, c0


@pytest.mark.slow
def test_bound_with_the_optimal_denoiser_meets_the_exact_discrete_log_likelihood():
    """With eps_hat = E[eps | z_t] the continuous-time diffusion term telescopes (sum of KL(q(z_s|z_t,x) ||
    q(z_s|z_t)) = E log[q(z_0|x) q(z_1) / (q(z_1|x) q(z_0))]), so for every image

        E[bound] = log P(x) - sum_d E_{q(z_1|k_d)}[log q(z_1) - log N(z_1; 0, 1)]
                            - sum_d E_{q(z_0|k_d)}[log q(k_d | z_0) - log p(k_d | z_0)]

    The two corrections come from the endpoints only (VDM's N(0, 1) prior instead of the data's q(z_1); its
    decoder's uniform prior over the 256 values instead of P).  They are computed here by Gauss-Hermite
    quadrature and are tiny, so the derived tolerance is |corrections| + 4 Monte-Carlo standard errors of the
    mean over draws."""
    model = Diffusion(DiffusionConfig(**TINY, diffusion_t_samples=32)).double().eval()
    model.net = OptimalDenoiser()
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor(np.exp(data_log_probs()))
    k = torch.multinomial(probs, 2 * 3 * 4 * 4, replacement=True, generator=g).view(2, 3, 4, 4)
    x = k.double() / 127.5 - 1
    log_p = data_log_probs()[k.numpy()].reshape(2, -1).sum(1)

    corr = {int(v): endpoint_corrections(int(v)) for v in k.unique()}
    c = np.array([sum(sum(corr[int(v)]) for v in k[b].flatten()) for b in range(2)])
    assert np.all(np.abs(c) < 1e-2 * np.abs(log_p))                        # endpoints: a small part of log P

    n, chunk = 160, 10
    torch.manual_seed(1)
    bound = []
    for _ in range(n // chunk):                                            # chunks bound the denoiser's memory
        xs = x.repeat(chunk, 1, 1, 1)
        t, eps, eps0 = draws(xs, model.cfg.diffusion_t_samples, fixed=False)
        with torch.no_grad():
            terms = model.terms(xs, t.double(), eps.double(), eps0.double())
        bound.append(-(terms["prior"] + terms["recon"] + terms["diffusion"]).view(chunk, 2).numpy())
    bound = np.concatenate(bound)
    mean, se = bound.mean(0), bound.std(0, ddof=1) / math.sqrt(n)
    expected = log_p - c
    np.testing.assert_array_less(np.abs(mean - expected), 4 * se)          # the derived expectation
    np.testing.assert_array_less(np.abs(mean - log_p), np.abs(c) + 4 * se)  # the stated tolerance around log P
    assert np.all(se < 0.006 * np.abs(log_p))         # tight enough to mean something: 4 SE is ~2% of log P
    # the fixed evaluation draw is one such draw
    with torch.no_grad():
        fixed = model.log_prob(x).numpy()
    np.testing.assert_array_less(np.abs(fixed - log_p), np.abs(c) + 4 * se * math.sqrt(n))


@pytest.mark.parametrize("channels", [8, 32])
def test_the_network_is_conditioned_on_gamma_in_every_block(channels):
    """Each residual block's output changes with gamma at a fixed input (an embedding added before a GroupNorm of
    one channel per group would be normalised away)."""
    torch.manual_seed(0)
    model = Diffusion(DiffusionConfig(**{**TINY, "diffusion_channels": channels})).eval()
    z = torch.randn(2, 3, 4, 4)
    emb = model.net.emb_mlp(torch.randn(2, channels))
    for block in [b for level in model.net.down for b in level] + list(model.net.mid):
        c_in = block.norm1.num_channels
        h = torch.randn(2, c_in, 4, 4)
        with torch.no_grad():
            assert not torch.allclose(block(h, emb[:1].expand(2, -1)), block(h, emb[1:].expand(2, -1)), atol=1e-4)
    with torch.no_grad():
        model.net.conv_out.weight.normal_(0, 0.3)
        g = torch.tensor([0.1, 0.9])
        assert not torch.allclose(model.net(z[:1].expand(2, -1, -1, -1), g).diff(dim=0), torch.zeros(1), atol=1e-4)


@pytest.mark.slow
def test_ancestral_sampler_with_the_optimal_denoiser_draws_the_data_distribution():
    """With eps_hat = E[eps | z_t] for iid sub-pixels with P(k), the sampler's values follow P: mean and standard
    deviation of 1536 sampled sub-pixels within 4 standard errors of P's."""
    model = Diffusion(DiffusionConfig(**TINY)).double().eval()
    model.net = OptimalDenoiser()
    x = model.sample(8, 8, 8, steps=200, generator=torch.Generator().manual_seed(0))
    f = ((torch.round((x + 1) * 127.5) * 2 + 1) / 256 - 1).flatten().numpy()
    p = np.exp(data_log_probs())
    mean = float(np.sum(p * values()))
    std = math.sqrt(float(np.sum(p * (values() - mean) ** 2)))
    n = f.size
    assert abs(f.mean() - mean) < 4 * std / math.sqrt(n)
    assert abs(f.std() - std) < 4 * std / math.sqrt(2 * n)
