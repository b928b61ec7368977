"""Glow (Kingma & Dhariwal 2018): a multi-scale normalising flow with an exact per-image log-likelihood.

Layout (openai ``model.py`` / y0ast ``model.py``), for ``L`` levels of ``K`` steps::

    level i:  squeeze (C, H, W -> 4C, H/2, W/2) -> K x [actnorm -> invertible 1x1 conv -> coupling]
              -> (i < L-1) split: half the channels z2 are factored out, scored under N(mean, exp(logs)^2)
                 with (mean, logs) = Conv2dZeros(kept half z1) (the learned split prior)
    top:      the last z under N(mean, exp(logs)^2) with per-channel learned (mean, logs) (``learn_top``) or N(0, 1)

For 32x32x3 and L = 3: 16x16x12 -> split -> 8x8x24 -> split -> 4x4x48 at the top.

Likelihood on the 8-bit grid (uniform dequantisation, as openai and y0ast): an image with integer values ``k`` in
[0, 255] becomes ``y = (k + u) / 256 - 0.5`` with ``u ~ U(0, 1)^D`` and::

    log P(k) >= E_u[log p(y)] - D log 256,     log p(y) = log p(z) + sum log|det dz/dy|

(Jensen: the bin has volume ``256^-D``).  :meth:`Glow.forward` returns the one-draw estimate of the right side
in nats per image, so its bits/dim ``-log P / (D ln 2)`` are on the same discrete scale as PixelCNN++'s and are
an upper bound on the model's true discrete bits/dim.  In training mode ``u`` is fresh noise from the default
generator (seeded per step by the run engine); in eval mode it is one fixed draw (``EVAL_NOISE_SEED``), so scores
are deterministic and do not depend on the batch.

The flow always runs in the parameters' precision: autocast (``--amp bf16``) is switched off inside
:meth:`Glow.forward`, because coupling networks in bfloat16 moved the log-likelihood of a small test model by
about 1 bit/dim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn

from oe_core.cli_config import config_from_dict, help_field, require
from oe_core.errors import OEError

from .coupling import COUPLINGS, Coupling
from .layers import ActNorm, Conv2dZeros, InvConv1x1, gaussian_log_prob, squeeze, unsqueeze

N_BINS = 256
EVAL_NOISE_SEED = 0


@dataclass
class GlowConfig:
    """Glow hyperparameters (defaults: the paper's CIFAR-10 model)."""

    glow_levels: int = help_field(3, "Glow: levels L (squeeze, K steps, split)")
    glow_steps: int = help_field(32, "Glow: flow steps K per level")
    glow_hidden: int = help_field(512, "Glow: channels of the coupling networks' hidden layers")
    glow_coupling: str = help_field("affine", "Glow: affine (the paper's quantitative runs) or additive coupling",
                                    choices=COUPLINGS)
    glow_lu: bool = help_field(True, "Glow: LU-decomposed 1x1 convolutions (--no-glow-lu: plain W with a "
                                     "float64 log-determinant)")
    glow_learn_top: bool = help_field(True, "Glow: learned per-channel mean and scale of the top prior "
                                            "(--no-glow-learn-top: standard normal)")

    def validate(self) -> None:
        require(self.glow_levels >= 1, f"--glow-levels must be >= 1, got {self.glow_levels}")
        require(self.glow_steps >= 1, f"--glow-steps must be >= 1, got {self.glow_steps}")
        require(self.glow_hidden >= 1, f"--glow-hidden must be >= 1, got {self.glow_hidden}")
        require(self.glow_coupling in COUPLINGS, f"--glow-coupling must be one of {list(COUPLINGS)}, "
                                                 f"got {self.glow_coupling!r}")

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (one halving per level)."""
        return 2 ** self.glow_levels


class FlowStep(nn.Module):
    """actnorm -> invertible 1x1 conv -> coupling."""

    def __init__(self, channels: int, hidden: int, coupling: str, lu: bool):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels, lu=lu)
        self.coupling = Coupling(channels, hidden, coupling)

    def forward(self, x, logdet):
        for layer in (self.actnorm, self.invconv, self.coupling):
            x, logdet = layer(x, logdet)
        return x, logdet

    def reverse(self, y, logdet):
        for layer in (self.coupling, self.invconv, self.actnorm):
            y, logdet = layer.reverse(y, logdet)
        return y, logdet


class Level(nn.Module):
    """squeeze -> K flow steps -> optional split with a learned prior on the factored-out half."""

    def __init__(self, in_channels: int, cfg: GlowConfig, split: bool):
        super().__init__()
        c = in_channels * 4
        self.steps = nn.ModuleList([FlowStep(c, cfg.glow_hidden, cfg.glow_coupling, cfg.glow_lu)
                                    for _ in range(cfg.glow_steps)])
        self.split_prior = Conv2dZeros(c // 2, c) if split else None
        self.out_channels = c // 2 if split else c

    def prior(self, z1: torch.Tensor):
        h = self.split_prior(z1).to(z1.dtype)
        return h[:, 0::2], h[:, 1::2]

    def forward(self, x, logdet, log_pz, latents: Optional[list] = None):
        x = squeeze(x)
        for step in self.steps:
            x, logdet = step(x, logdet)
        if self.split_prior is None:
            return x, logdet, log_pz
        z1, z2 = x.chunk(2, dim=1)
        mean, logs = self.prior(z1)
        if latents is not None:
            latents.append(z2)
        return z1, logdet, log_pz + gaussian_log_prob(z2, mean, logs)

    def reverse(self, z, temperature: float, generator: Optional[torch.Generator],
                z2: Optional[torch.Tensor] = None):
        if self.split_prior is not None:
            if z2 is None:
                mean, logs = self.prior(z)
                eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
                z2 = mean + temperature * torch.exp(logs) * eps
            z = torch.cat([z, z2], dim=1)
        logdet = z.new_zeros(len(z))
        for step in reversed(self.steps):
            z, logdet = step.reverse(z, logdet)
        return unsqueeze(z)


class Glow(nn.Module):
    """Glow: ``forward(x (B, 3, H, W) in [-1, 1] on the 8-bit grid) -> log-likelihood [B] in nats`` (see the
    module docstring for the dequantisation)."""

    def __init__(self, cfg: GlowConfig | None = None, in_channels: int = 3):
        super().__init__()
        cfg = cfg or GlowConfig()
        cfg.validate()
        self.cfg = cfg
        self.in_channels = in_channels
        levels, c = [], in_channels
        for i in range(cfg.glow_levels):
            levels.append(Level(c, cfg, split=i < cfg.glow_levels - 1))
            c = levels[-1].out_channels
        self.levels = nn.ModuleList(levels)
        self.top_channels = c
        self.top_prior = nn.Parameter(torch.zeros(1, 2 * c, 1, 1), requires_grad=cfg.glow_learn_top)

    def _check(self, x: torch.Tensor) -> None:
        m = self.cfg.multiple
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % m or x.shape[3] % m:
            raise OEError(f"Glow with {self.cfg.glow_levels} levels takes (B, {self.in_channels}, H, W) images with "
                          f"H and W multiples of {m}, got {tuple(x.shape)}")

    def dequantize(self, x: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[-1, 1]`` grid images -> ``y = (k + u)/256 - 0.5`` (``u``: ``noise``, else see the module doc)."""
        k = torch.round((x.float() + 1.0) * 127.5)
        if noise is None:
            if self.training:
                noise = torch.rand_like(k)
            else:
                noise = self._eval_noise(k)
        return ((k + noise) / N_BINS - 0.5).to(self.top_prior.dtype)

    def _eval_noise(self, k: torch.Tensor) -> torch.Tensor:
        """The fixed evaluation draw for images shaped like ``k``, made once per image shape and device and kept
        on the device (a captured scoring graph then holds no host-to-device copy)."""
        key = (tuple(k.shape[1:]), k.device)
        cached = getattr(self, "_eval_noise_cache", None)
        if cached is None or cached[0] != key:
            with torch.inference_mode(False):       # a normal tensor, also when first made under inference_mode
                g = torch.Generator().manual_seed(EVAL_NOISE_SEED)
                cached = (key, torch.rand(k.shape[1:], generator=g).to(k.device))
            self._eval_noise_cache = cached
        return cached[1].expand_as(k)

    def top_params(self, like: torch.Tensor):
        mean, logs = self.top_prior.to(like.dtype).chunk(2, dim=1)
        return mean.expand_as(like), logs.expand_as(like)

    def encode(self, y: torch.Tensor, latents: Optional[list] = None):
        """Continuous ``y`` -> ``(z_top, log|det dz/dy| [B], log p(factored-out z) [B])``; with a list,
        ``latents`` receives the factored-out halves in order (``z_top`` last is not appended)."""
        logdet = y.new_zeros(len(y))
        log_pz = y.new_zeros(len(y))
        z = y
        for level in self.levels:
            z, logdet, log_pz = level(z, logdet, log_pz, latents)
        return z, logdet, log_pz

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """``log p(y)`` [B] in nats of continuous inputs ``y`` (the flow's density)."""
        z, logdet, log_pz = self.encode(y)
        mean, logs = self.top_params(z)
        return log_pz + gaussian_log_prob(z, mean, logs) + logdet

    def forward(self, x: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._check(x)
        with torch.autocast(x.device.type, enabled=False):  # bf16 coupling nets cost ~1 bit/dim of accuracy
            y = self.dequantize(x, noise)
            return self.log_density(y) - y[0].numel() * math.log(N_BINS)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Glow":
        """The network a run's ``config.json`` describes (its GlowConfig fields; other keys are ignored)."""
        return cls(config_from_dict(GlowConfig, dict(config)))

    def log_prob(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-image log-likelihood in nats on the 8-bit grid.

        ``out`` is ``self(x)`` when the caller has already run the network (through a DDP or ``torch.compile``
        wrapper); Glow's forward returns the log-likelihood itself.
        """
        return self(x) if out is None else out

    def decode(self, z_top: torch.Tensor, temperature: float = 1.0, generator: Optional[torch.Generator] = None,
               latents: Optional[list] = None) -> torch.Tensor:
        """Continuous ``y`` from a top latent and the factored-out halves ``latents`` (as :meth:`encode` fills
        them; drawn from their priors at ``temperature`` when not given)."""
        z, rest = z_top, list(latents or [])
        for level in reversed(self.levels):
            z2 = rest.pop() if level.split_prior is not None and latents is not None else None
            z = level.reverse(z, temperature, generator, z2)
        return z

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` images ``(n, 3, height, width)`` in [-1, 1] on the 8-bit grid; latents ``~ N(mean, (T std)^2)``
        (random numbers from the CPU ``generator``, so samples do not depend on the device)."""
        m = self.cfg.multiple
        if height % m or width % m:
            raise OEError(f"Glow with {self.cfg.glow_levels} levels samples sizes that are multiples of {m}, "
                          f"got {height}x{width}")
        shape = (n, self.top_channels, height // m, width // m)
        mean, logs = self.top_params(torch.empty(shape, device=self.top_prior.device, dtype=self.top_prior.dtype))
        eps = torch.randn(shape, generator=generator, dtype=mean.dtype).to(mean.device)
        y = self.decode(mean + temperature * torch.exp(logs) * eps, temperature, generator)
        k = torch.floor((y + 0.5) * N_BINS).clamp_(0, N_BINS - 1)
        return k / 127.5 - 1.0


def actnorm_layers(model: nn.Module) -> list[ActNorm]:
    return [m for m in model.modules() if isinstance(m, ActNorm)]


@torch.no_grad()
def data_dependent_init(model: Glow, x: torch.Tensor) -> None:
    """Initialise every actnorm (flow steps and coupling networks) from one batch ``x`` ([-1, 1] grid images), in
    order, so its output on that batch has zero mean and unit variance per channel."""
    layers = actnorm_layers(model)
    for layer in layers:
        layer.init_pending = True
    try:
        model(x)
    finally:
        for layer in layers:
            layer.init_pending = False
