"""Glow's invertible layers (Kingma & Dhariwal 2018): squeeze, actnorm, invertible 1x1 convolution, zero-init conv.

Every flow layer maps ``(x, logdet) -> (y, logdet + log|det dy/dx|)`` per image (``logdet`` is a ``[B]`` tensor)
and has an exact ``reverse``.  The layers compute in the dtype of their input, so a float64 model gives float64
log-determinants (the Jacobian tests use that).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from oe_core.errors import OEError


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``; output channel ``c*4 + 2*i + j`` holds sub-pixel ``(i, j)`` of
    channel ``c`` (the grouping of the openai and y0ast code)."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise OEError(f"Glow squeeze needs even height and width, got {tuple(x.shape)}")
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`squeeze`."""
    b, c, h, w = x.shape
    return x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)


class ActNorm(nn.Module):
    """``y = (x + bias) * exp(logs)`` per channel; log-det ``H W sum(logs)``.

    Data-dependent initialisation (:func:`density_oe.glow.model.data_dependent_init`): on one batch, ``bias =
    -mean`` and ``logs = -log(std + 1e-6)`` over (N, H, W), so that batch comes out with zero mean and unit variance
    per channel.  Until then the layer is the identity.  (openai stores ``logs / 3`` and multiplies by 3 on use; the
    function is the same, only the gradient scale of ``logs`` differs.)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.init_pending = False  # set by data_dependent_init for one forward pass

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(0, 2, 3), keepdim=True).sqrt()
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.init_pending = False

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        return self.logs.to(x.dtype).sum() * (x.shape[2] * x.shape[3])

    def forward(self, x: torch.Tensor, logdet: torch.Tensor | None = None):
        if self.init_pending:
            self._initialize(x)
        y = (x + self.bias.to(x.dtype)) * torch.exp(self.logs.to(x.dtype))
        if logdet is None:  # used as a plain normalisation layer inside the coupling network
            return y
        return y, logdet + self._logdet(x)

    def reverse(self, y: torch.Tensor, logdet: torch.Tensor):
        x = y * torch.exp(-self.logs.to(y.dtype)) - self.bias.to(y.dtype)
        return x, logdet - self._logdet(y)


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution ``y = W x`` at every pixel; log-det ``H W log|det W|``.

    ``W`` starts as a random orthogonal matrix.  ``lu=False``: ``W`` is a free parameter and ``log|det W|`` is
    computed in float64 (as openai).  ``lu=True``: ``W = P L (U + diag(sign_s exp(log_s)))`` with ``P`` and
    ``sign_s`` fixed, ``L`` unit lower-triangular and ``U`` strictly upper-triangular, so ``log|det W| =
    sum(log_s)`` (cheaper: no determinant, no matrix inverse in the forward pass).
    """

    def __init__(self, channels: int, lu: bool = True):
        super().__init__()
        self.lu = lu
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        if not lu:
            self.weight = nn.Parameter(q)
            return
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight_matrix(self, dtype: torch.dtype) -> torch.Tensor:
        if not self.lu:
            return self.weight.to(dtype)
        c = self.log_s.shape[0]
        eye = torch.eye(c, dtype=dtype, device=self.log_s.device)
        lower = torch.tril(self.lower.to(dtype), -1) + eye
        upper = torch.triu(self.upper.to(dtype), 1) + torch.diag(self.sign_s.to(dtype) * torch.exp(self.log_s.to(dtype)))
        return self.perm.to(dtype) @ lower @ upper

    def log_abs_det(self, dtype: torch.dtype) -> torch.Tensor:
        if self.lu:
            return self.log_s.to(dtype).sum()
        return torch.linalg.slogdet(self.weight.double())[1].to(dtype)

    def forward(self, x: torch.Tensor, logdet: torch.Tensor):
        with torch.autocast(x.device.type, enabled=False):  # the mixing stays in the flow's precision
            y = F.conv2d(x, self.weight_matrix(x.dtype)[:, :, None, None])
        return y, logdet + self.log_abs_det(x.dtype) * (x.shape[2] * x.shape[3])

    def reverse(self, y: torch.Tensor, logdet: torch.Tensor):
        with torch.autocast(y.device.type, enabled=False):
            w_inv = torch.linalg.inv(self.weight_matrix(torch.float64)).to(y.dtype)
            x = F.conv2d(y, w_inv[:, :, None, None])
        return x, logdet - self.log_abs_det(y.dtype) * (y.shape[2] * y.shape[3])


class Conv2dZeros(nn.Module):
    """``(conv3x3(x) + b) * exp(3 logs)`` with weight, bias and ``logs`` all zero at init (openai's
    ``conv2d_zeros``): the last layer of every coupling network and of the split and top priors, so each starts
    as a constant."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.exp(self.logs * 3.0).to(x.dtype)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, logs: torch.Tensor) -> torch.Tensor:
    """``sum log N(z; mean, exp(logs)^2)`` over all but the batch dimension, ``[B]``."""
    lp = -0.5 * (math.log(2 * math.pi) + 2.0 * logs + (z - mean) ** 2 * torch.exp(-2.0 * logs))
    return lp.flatten(1).sum(1)
