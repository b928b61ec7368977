"""A continuous-time variance-preserving diffusion (Variational Diffusion Models, Kingma, Salimans, Poole & Ho
2021) with the VDM bound on the 8-bit discrete log-likelihood.

An 8-bit value ``k`` is encoded as the bin centre ``f = (2k + 1)/256 - 1`` (VDM ``model_vdm.py``; the suite's
``x = k/127.5 - 1`` is mapped back to ``k`` first).  The forward process is ``z_t = alpha_t f + sigma_t eps``
with the schedule of :mod:`.schedule`.  The negative bound, in nats per image, summed over the ``D`` sub-pixels::

    -log P(k) <= prior + recon + diffusion
    prior     = KL(q(z_1 | f) || N(0, I)) = 1/2 sum (alpha_1^2 f^2 + sigma_1^2 - log sigma_1^2 - 1)
    recon     = -log p(k | z_0),  per sub-pixel a 256-way categorical over the encoded values f_v:
                logit_v = -1/2 exp(-gamma_0) (z_0 / alpha_0 - f_v)^2,  z_0 = alpha_0 f + sigma_0 eps_0
    diffusion = 1/2 E_{t ~ U(0,1), eps} [gamma'(t) ||eps - eps_hat(z_t, gamma_t)||^2]          (T = 0)
              = 1/2 E [T (exp(gamma_t - gamma_s) - 1) ||eps - eps_hat||^2],  t = ceil(t T)/T, s = t - 1/T   (T > 0)

The diffusion expectation is estimated with ``K`` stratified ``t`` draws per image, each with its own ``eps``
(:mod:`.draws`; ``--diffusion-t-samples`` at evaluation, ``--diffusion-train-t-samples`` in training); ``eps_0``
is one draw.  No dequantisation is involved: ``exp(log_prob)`` bounds the model's probability of the discrete
image, on the same scale as PixelCNN++'s.

:meth:`Diffusion.forward` returns that one-draw-per-``t``-sample estimate of ``log P(k)`` (``-`` the sum above);
``log_prob(x, out)`` reads it.  In training mode the draws are fresh (the run engine seeds the default generator
per step); in eval mode they are fixed by each image's content, so scores do not depend on the batch.

Precision: the score network runs under the caller's autocast (``--amp bf16``); ``eps_hat = z + conv_out(h)``
and every term of the bound are computed in float32 (or the parameters' precision, float64 in tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn

from oe_core.cli_config import config_from_dict, help_field, require
from oe_core.errors import OEError
from oe_core.progress import progress_bar
from oe_core.run import autocast

from .draws import draws
from .schedule import GAMMA_MAX, GAMMA_MIN, LinearGamma
from .unet import UNet

N_BINS = 256


@dataclass
class DiffusionConfig:
    """Diffusion hyperparameters (defaults: a CIFAR-10 U-Net and VDM's CIFAR-10 schedule; see :mod:`.unet` for
    how the network differs from VDM's)."""

    diffusion_channels: int = help_field(128, "diffusion: base width C of the U-Net (DDPM/VDM CIFAR-10: 128)")
    diffusion_levels: int = help_field(3, "diffusion: U-Net resolutions (image sides must be multiples of "
                                          "2^(levels-1))")
    diffusion_blocks: int = help_field(2, "diffusion: residual blocks per U-Net resolution and direction")
    diffusion_dropout: float = help_field(0.1, "diffusion: dropout in the residual blocks while training "
                                               "(VDM CIFAR-10: 0.1; off when scoring)")
    diffusion_gamma_min: float = help_field(GAMMA_MIN, "diffusion: gamma(0), the negative log-SNR at t = 0 "
                                                       "(VDM CIFAR-10: -13.3)")
    diffusion_gamma_max: float = help_field(GAMMA_MAX, "diffusion: gamma(1) (VDM CIFAR-10: 5.0)")
    diffusion_timesteps: int = help_field(0, "diffusion: 0 = the continuous-time bound (VDM); T > 0 = the "
                                             "discrete-time bound with T steps")
    diffusion_t_samples: int = help_field(16, "diffusion: stratified t draws per image estimating the diffusion "
                                              "loss at evaluation (test bpd, scoring, detectors)")
    diffusion_train_t_samples: int = help_field(1, "diffusion: stratified t draws per image in training (VDM: "
                                                   "1; more lowers the noise of per-image bpd in the OE hinge)")

    def validate(self) -> None:
        for name in ("channels", "levels", "blocks", "t_samples", "train_t_samples"):
            value = getattr(self, f"diffusion_{name}")
            require(value >= 1, f"--diffusion-{name.replace('_', '-')} must be >= 1, got {value}")
        require(0 <= self.diffusion_dropout < 1, f"--diffusion-dropout must be in [0, 1), got "
                                                 f"{self.diffusion_dropout}")
        require(self.diffusion_gamma_min < self.diffusion_gamma_max,
                f"--diffusion-gamma-min ({self.diffusion_gamma_min}) must be below --diffusion-gamma-max "
                f"({self.diffusion_gamma_max})")
        require(self.diffusion_timesteps >= 0, f"--diffusion-timesteps must be >= 0, got {self.diffusion_timesteps}")

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (one halving per extra resolution)."""
        return 2 ** (self.diffusion_levels - 1)


def encode(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] grid images ``k/127.5 - 1`` -> VDM's bin centres ``(2k + 1)/256 - 1``."""
    k = torch.round((x + 1.0) * 127.5)
    return (2.0 * k + 1.0) / N_BINS - 1.0


class Diffusion(nn.Module):
    """VDM: ``forward(x (B, 3, H, W) in [-1, 1] on the 8-bit grid) -> the bound on log P(x) [B] in nats`` (see the
    module docstring)."""

    def __init__(self, cfg: DiffusionConfig | None = None, in_channels: int = 3):
        super().__init__()
        cfg = cfg or DiffusionConfig()
        cfg.validate()
        self.cfg = cfg
        self.in_channels = in_channels
        self.gamma = LinearGamma(cfg.diffusion_gamma_min, cfg.diffusion_gamma_max)
        self.net = UNet(cfg.diffusion_channels, cfg.diffusion_levels, cfg.diffusion_blocks, cfg.diffusion_dropout,
                        in_channels)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Diffusion":
        """The network a run's ``config.json`` describes (its DiffusionConfig fields; other keys are ignored)."""
        return cls(config_from_dict(DiffusionConfig, dict(config)))

    @property
    def work_dtype(self) -> torch.dtype:
        """The precision of sampling: float64 for a float64 network (tests), else float32."""
        p = next(self.net.parameters(), None)
        return torch.float64 if p is not None and p.dtype == torch.float64 else torch.float32

    def _check(self, x: torch.Tensor) -> None:
        m = self.cfg.multiple
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % m or x.shape[3] % m:
            raise OEError(f"a diffusion U-Net with {self.cfg.diffusion_levels} resolutions takes (B, "
                          f"{self.in_channels}, H, W) images with H and W multiples of {m}, got {tuple(x.shape)}")

    # ---------------------------------------------------------------- the three terms, per image, in nats

    def prior_kl(self, f: torch.Tensor) -> torch.Tensor:
        """``KL(q(z_1 | f) || N(0, I))`` [B]."""
        a2 = torch.sigmoid(-torch.tensor(self.gamma.gamma_max, dtype=f.dtype, device=f.device))
        s2 = 1.0 - a2
        return 0.5 * (a2 * f ** 2 + s2 - torch.log(s2) - 1.0).flatten(1).sum(1)

    def reconstruction(self, f: torch.Tensor, eps0: torch.Tensor) -> torch.Tensor:
        """``-log p(k | z_0)`` [B]: a 256-way categorical per sub-pixel around ``z_0 / alpha_0``."""
        g0 = torch.tensor(self.gamma.gamma_min, dtype=f.dtype, device=f.device)
        z_rescaled = f + torch.exp(0.5 * g0) * eps0                 # z_0 / alpha_0, since sigma_0/alpha_0 = e^{g0/2}
        values = (2.0 * torch.arange(N_BINS, device=f.device, dtype=f.dtype) + 1.0) / N_BINS - 1.0
        logits = -0.5 * torch.exp(-g0) * (z_rescaled.unsqueeze(-1) - values) ** 2
        k = torch.round((f + 1.0) * N_BINS / 2 - 0.5).to(torch.int64).clamp_(0, N_BINS - 1)
        logp = logits.gather(-1, k.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        return -logp.flatten(1).sum(1)

    def eps_hat(self, z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """The network's noise prediction ``z + conv_out(h)``, in ``z``'s precision."""
        return z + self.net(z, self.gamma.normalised(gamma)).to(z.dtype)

    def diffusion_loss(self, f: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The diffusion term [B] averaged over the ``K`` draws ``t [B, K]``, ``eps [B, K, C, H, W]`` (continuous
        time, or discrete with ``diffusion_timesteps`` steps); all ``B K`` noisy images in one network pass."""
        b, k = t.shape
        steps = self.cfg.diffusion_timesteps
        if steps:
            t = torch.ceil(t * steps) / steps
        gamma_t = self.gamma(t).flatten()                           # [B K]
        alpha, sigma = LinearGamma.alpha_sigma(gamma_t)
        f_k = f.unsqueeze(1).expand(b, k, *f.shape[1:]).flatten(0, 1)
        e = eps.flatten(0, 1)
        z = alpha.view(-1, 1, 1, 1) * f_k + sigma.view(-1, 1, 1, 1) * e
        sq = ((e - self.eps_hat(z, gamma_t)) ** 2).flatten(1).sum(1).view(b, k)
        if steps:
            gamma_s = self.gamma(t - 1.0 / steps).flatten()
            weight = steps * torch.expm1(gamma_t - gamma_s).view(b, k)
        else:
            weight = self.gamma.slope
        return (0.5 * weight * sq).mean(1)

    def terms(self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, eps0: torch.Tensor) -> dict:
        """The three terms [B] (nats) of images ``x`` for given draws (:func:`.draws.draws` makes them), in float64
        for float64 images, else float32."""
        f = encode(x.to(torch.float64 if x.dtype == torch.float64 else torch.float32))
        t, eps, eps0 = t.to(f.dtype), eps.to(f.dtype), eps0.to(f.dtype)
        diffusion = self.diffusion_loss(f, t, eps)      # the network under the caller's autocast, the rest in f's
        with torch.autocast(x.device.type, enabled=False):
            return {"prior": self.prior_kl(f), "recon": self.reconstruction(f, eps0), "diffusion": diffusion}

    @property
    def t_samples(self) -> int:
        return self.cfg.diffusion_train_t_samples if self.training else self.cfg.diffusion_t_samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        t, eps, eps0 = draws(x, self.t_samples, fixed=not self.training)
        terms = self.terms(x, t, eps, eps0)
        return -(terms["prior"] + terms["recon"] + terms["diffusion"])

    def log_prob(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The bound on the per-image log-likelihood in nats on the 8-bit grid.

        ``out`` is ``self(x)`` when the caller has already run the network (through a DDP or ``torch.compile``
        wrapper); the diffusion's forward returns the bound itself.
        """
        return self(x) if out is None else out

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, steps: int,
               generator: Optional[torch.Generator] = None, progress: bool = False) -> torch.Tensor:
        """``n`` images ``(n, 3, height, width)`` on the [-1, 1] grid by ancestral sampling with ``steps`` steps of
        ``p(z_s | z_t)`` (VDM ``sample_step``) from ``z_1 ~ N(0, I)``, then the most likely 8-bit value of each
        sub-pixel under ``p(k | z_0)``.  Random numbers come from the CPU ``generator``."""
        m = self.cfg.multiple
        if height % m or width % m:
            raise OEError(f"a diffusion U-Net with {self.cfg.diffusion_levels} resolutions samples sizes that are "
                          f"multiples of {m}, got {height}x{width}")
        p = next(self.net.parameters(), None)
        device, dtype = (p.device if p is not None else torch.device("cpu")), self.work_dtype
        shape = (n, self.in_channels, height, width)

        def noise() -> torch.Tensor:
            return torch.randn(shape, generator=generator, dtype=dtype).to(device)

        z = noise()
        for i in progress_bar(range(steps, 0, -1), "diffusion steps", progress):
            t = torch.full((n,), i / steps, dtype=dtype, device=device)
            g_t, g_s = self.gamma(t), self.gamma(t - 1.0 / steps)
            a_t, s_t = LinearGamma.alpha_sigma(g_t)
            a_s, s_s = LinearGamma.alpha_sigma(g_s)
            c = -torch.expm1(g_s - g_t)                                # 1 - SNR(t)/SNR(s)
            e = self.eps_hat(z, g_t)
            mean = (a_s / a_t).view(-1, 1, 1, 1) * (z - (c * s_t).view(-1, 1, 1, 1) * e)
            z = mean + (s_s * c.sqrt()).view(-1, 1, 1, 1) * noise()
        a0, _ = LinearGamma.alpha_sigma(self.gamma(torch.zeros((), dtype=dtype, device=device)))
        k = torch.round(((z / a0) + 1.0) * N_BINS / 2 - 0.5).clamp_(0, N_BINS - 1)
        return k / 127.5 - 1.0


@torch.inference_mode()
def sample_family(model: Diffusion, n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device, options) -> torch.Tensor:
    """The sampler of the ``diffusion`` family (:class:`density_oe.archs.DensityArch`): reads ``options.steps``,
    ``options.amp`` (the U-Net in bf16; the updates stay float32) and ``options.progress``."""
    model = model.to(device).eval()
    with autocast(device, options.amp):
        return model.sample(n, height, width, options.steps, generator, options.progress)
