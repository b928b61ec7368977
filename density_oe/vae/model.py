"""A convolutional VAE on 8-bit images: Gaussian posterior over a latent map, factorised discretised-logistic
decoder (:mod:`density_oe.vae.decoder`), importance-weighted bound as ``log_prob`` (:mod:`density_oe.vae.bounds`).

Layout, for ``L = vae_levels`` and ``C_i = vae_hidden * 2^min(i, 2)``::

    encoder:  conv3x3(3 -> C_0) -> L x [residual block, conv4x4 stride 2 (C_i -> C_i+1)]
              -> SiLU -> conv1x1 -> (mu, logvar), each (vae_latent, H / 2^L, W / 2^L)
    decoder:  conv1x1(vae_latent -> C_L) -> L x [residual block, convT4x4 stride 2 (C_i+1 -> C_i)]
              -> residual block -> SiLU -> conv3x3 -> 6 channels (means and log-scales of R, G, B)

    residual block: x + conv3x3(SiLU(conv3x3(SiLU(x))))

No normalisation layers: nothing depends on the other images of a batch (a BatchNorm's statistics would move
in an OE step's mixed in/outlier batch).  The two heads run in float32 outside autocast (``--amp bf16`` runs
the rest in bfloat16), and start at zero: at initialisation ``q(z|x) = p(z)`` and the decoder's logistics have
mean 0 and scale 1.

``log_prob(x)`` is ``L_K(x)``, ``K = vae_iw_samples`` (K = 1: the ELBO), in nats per image; the evaluation
draws are fixed per image (:class:`~density_oe.vae.bounds.LatentVariableModel`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn

from oe_core.cli_config import config_from_dict, help_field, require
from oe_core.errors import OEError

from . import decoder as likelihood
from .bounds import LatentVariableModel


@dataclass
class VAEConfig:
    """VAE hyperparameters (a small convolutional VAE; the bound's sample count)."""

    vae_levels: int = help_field(3, "VAE: stride-2 halvings between the image and the latent map (32x32 -> 4x4 "
                                    "for 3); image sides must be multiples of 2^levels")
    vae_hidden: int = help_field(64, "VAE: channels of the first level (doubled per level, at most 4x)")
    vae_latent: int = help_field(16, "VAE: latent channels per position of the latent map")
    vae_iw_samples: int = help_field(1, "VAE: samples K of the importance-weighted bound that log_prob, training "
                                        "and scoring use (1: the ELBO, with the analytic KL)")

    def validate(self) -> None:
        require(self.vae_levels >= 1, f"--vae-levels must be >= 1, got {self.vae_levels}")
        require(self.vae_hidden >= 1, f"--vae-hidden must be >= 1, got {self.vae_hidden}")
        require(self.vae_latent >= 1, f"--vae-latent must be >= 1, got {self.vae_latent}")
        require(self.vae_iw_samples >= 1, f"--vae-iw-samples must be >= 1, got {self.vae_iw_samples}")

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (one halving per level)."""
        return 2 ** self.vae_levels


def _channels(cfg: VAEConfig, i: int) -> int:
    return cfg.vae_hidden * 2 ** min(i, 2)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class Float32Head(nn.Module):
    """SiLU then a zero-initialised convolution, in float32 outside autocast."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):
            return self.conv(nn.functional.silu(h.float()))


class Encoder(nn.Module):
    """``x`` ``(B, 3, H, W)`` -> ``(mu, logvar)``, each ``(B, vae_latent, H / 2^L, W / 2^L)``."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, _channels(cfg, 0), 3, padding=1)]
        for i in range(cfg.vae_levels):
            layers += [ResBlock(_channels(cfg, i)), nn.Conv2d(_channels(cfg, i), _channels(cfg, i + 1), 4, 2, 1)]
        self.body = nn.Sequential(*layers)
        self.head = Float32Head(_channels(cfg, cfg.vae_levels), 2 * cfg.vae_latent, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """``z`` ``(N, vae_latent, h, w)`` -> decoder output ``(N, 6, h 2^L, w 2^L)`` (:mod:`density_oe.vae.decoder`)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cfg.vae_latent, _channels(cfg, cfg.vae_levels), 1)]
        for i in reversed(range(cfg.vae_levels)):
            layers += [ResBlock(_channels(cfg, i + 1)),
                       nn.ConvTranspose2d(_channels(cfg, i + 1), _channels(cfg, i), 4, 2, 1)]
        layers.append(ResBlock(_channels(cfg, 0)))
        self.body = nn.Sequential(*layers)
        self.head = Float32Head(_channels(cfg, 0), likelihood.OUT_CHANNELS, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))


class VAE(LatentVariableModel):
    """The VAE: ``forward(x (B, 3, H, W) in [-1, 1] on the 8-bit grid) -> L_K(x) [B]`` in nats."""

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        cfg = cfg or VAEConfig()
        cfg.validate()
        self.cfg = cfg
        self.iw_samples = cfg.vae_iw_samples
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "VAE":
        """The network a run's ``config.json`` describes (its VAEConfig fields; other keys are ignored)."""
        return cls(config_from_dict(VAEConfig, dict(config)))

    def check_input(self, x: torch.Tensor) -> None:
        m = self.cfg.multiple
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % m or x.shape[3] % m:
            raise OEError(f"a VAE with {self.cfg.vae_levels} levels takes (B, 3, H, W) images with H and W "
                          f"multiples of {m} (its latent map is H/{m} x W/{m}), got {tuple(x.shape)}")

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` ``[N]`` (float32)."""
        return likelihood.log_prob(self.decoder(z.to(self._dtype)), x)

    @property
    def _dtype(self) -> torch.dtype:
        return self.decoder.head.conv.weight.dtype

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` images ``(n, 3, height, width)`` on the 8-bit grid of [-1, 1]: ``z ~ N(0, temperature^2 I)``, then
        one draw of every sub-pixel from the decoder (rounded to its bin).  Random numbers come from the CPU
        ``generator``, so samples do not depend on the device."""
        m = self.cfg.multiple
        if height % m or width % m:
            raise OEError(f"a VAE with {self.cfg.vae_levels} levels samples sizes that are multiples of {m}, "
                          f"got {height}x{width}")
        w = self.decoder.head.conv.weight
        z = torch.randn((n, self.cfg.vae_latent, height // m, width // m), generator=generator) * temperature
        x = likelihood.sample(self.decoder(z.to(w.device, w.dtype)), generator)
        return torch.round((x + 1.0) * 127.5) / 127.5 - 1.0


def data_dependent_init(model: VAE, x: torch.Tensor) -> None:
    """None: the VAE starts from PyTorch's initialisation with zero heads (``q = p(z)``, unit-scale decoder)."""
