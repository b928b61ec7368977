"""Toy VAEs for the VAE tests: a linear-Gaussian VAE with a closed-form log p(x), and tiny convolutional VAEs."""
from __future__ import annotations

import math

import torch
from torch import nn

from density_oe.vae import VAE, VAEConfig
from density_oe.vae.bounds import LatentVariableModel

TINY = dict(vae_levels=2, vae_hidden=6, vae_latent=3)


class LinearEncoder(nn.Module):
    """``mu = A x + c``, ``logvar`` a free vector (one per latent dimension)."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor, logvar: torch.Tensor):
        super().__init__()
        self.a, self.c, self.logvar = nn.Parameter(a.clone()), nn.Parameter(c.clone()), nn.Parameter(logvar.clone())

    def forward(self, x: torch.Tensor):
        mu = x @ self.a.T + self.c
        return mu, self.logvar.expand_as(mu)


class LinearGaussianVAE(LatentVariableModel):
    """``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, s^2 I_n)``, so ``x ~ N(b, W W^T + s^2 I)``.  W has orthogonal
    columns, so the true posterior is a diagonal Gaussian and :meth:`exact_encoder` is exactly optimal."""

    def __init__(self, encoder: nn.Module | None = None):
        super().__init__()
        w = torch.tensor([[1.0, 0.5], [1.0, -0.5], [0.0, 0.5]], dtype=torch.float64) * 1.5
        self.register_buffer("w", w)
        self.register_buffer("b", torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))
        self.s = 0.4
        self.encoder = encoder if encoder is not None else self.exact_encoder()

    def exact_encoder(self) -> LinearEncoder:
        w, s2 = self.w, self.s ** 2
        prec = torch.eye(2, dtype=w.dtype) + w.T @ w / s2          # diagonal: orthogonal columns
        cov = torch.linalg.inv(prec)
        a = cov @ w.T / s2
        return LinearEncoder(a, -a @ self.b, torch.log(torch.diagonal(cov)))

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean = z @ self.w.T + self.b
        return (-0.5 * ((x - mean) / self.s) ** 2 - math.log(self.s) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def exact_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.w @ self.w.T + self.s ** 2 * torch.eye(3, dtype=self.w.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)


def linear_data(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.5


def tiny_vae(seed: int = 0, **kw) -> VAE:
    """A tiny VAE with random (non-zero) heads, so the posterior and the decoder depend on the input."""
    torch.manual_seed(seed)
    model = VAE(VAEConfig(**{**TINY, **kw}))
    with torch.no_grad():
        for head in (model.encoder.head, model.decoder.head):
            head.conv.weight.normal_(0, 0.1)
            head.conv.bias.normal_(0, 0.1)
    return model


def images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Smooth-ish 8-bit images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 1, 1, generator=g) * 200 + 20
    grad = torch.linspace(-30, 30, size).view(1, 1, 1, size) * torch.rand(n, 1, 1, 1, generator=g)
    k = (base + grad + torch.randn(n, 3, size, size, generator=g) * 4).round().clamp(0, 255)
    return k / 127.5 - 1
