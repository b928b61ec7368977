"""Glow's coupling layer: the first half of the channels passes through and parametrises a transform of the
second half.

Affine (openai ``model.py`` and y0ast, the code's version of the paper's ``s * x + t``)::

    h = NN(z1);  shift = h[:, 0::2];  scale = sigmoid(h[:, 1::2] + 2)
    z2 <- (z2 + shift) * scale,      log-det = sum log(scale)

The log-det is computed as ``logsigmoid(h + 2)``, the same number where ``log(sigmoid(.))`` is finite; openai
takes ``log(scale)``, which is ``-inf`` once the sigmoid underflows to 0 in float32 (``h + 2 < -104``).  A
trained model can reach that on inputs far from its data: a full-preset mini Glow gave one Rademacher image
``h = -11553`` and ``bpd = inf``, which no OOD metric can rank; here that image gets a large finite bpd.

Additive: ``z2 <- z2 + NN(z1)`` (log-det 0).  ``NN`` = conv3x3(C) -> actnorm -> ReLU -> conv1x1(C) -> actnorm ->
ReLU -> Conv2dZeros 3x3, hidden weights from N(0, 0.05) (openai ``f()``; no extra edge-padding channel, as y0ast).
At initialisation the network outputs zeros, so the affine coupling scales by sigmoid(2) = 0.881.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ActNorm, Conv2dZeros

COUPLINGS = ("affine", "additive")


class CouplingNet(nn.Module):
    """The coupling network ``NN``: ``in_channels -> out_channels`` at the same resolution."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False)
        self.norm1 = ActNorm(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 1, bias=False)
        self.norm2 = ActNorm(hidden)
        self.out = Conv2dZeros(hidden, out_channels)
        nn.init.normal_(self.conv1.weight, std=0.05)
        nn.init.normal_(self.conv2.weight, std=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = F.relu(self.norm2(self.conv2(h)))
        return self.out(h)


class Coupling(nn.Module):
    """Affine or additive coupling on ``channels`` (even) channels."""

    def __init__(self, channels: int, hidden: int, kind: str = "affine"):
        super().__init__()
        self.kind = kind
        half = channels // 2
        self.net = CouplingNet(half, hidden, 2 * half if kind == "affine" else half)

    def _params(self, z1: torch.Tensor):
        h = self.net(z1).to(z1.dtype)  # the network may run under autocast; the flow stays in z1's dtype
        if self.kind == "additive":
            return h, None, None
        pre = h[:, 1::2] + 2.0
        return h[:, 0::2], torch.sigmoid(pre), F.logsigmoid(pre)  # log(scale), finite where the sigmoid underflows

    def forward(self, x: torch.Tensor, logdet: torch.Tensor):
        z1, z2 = x.chunk(2, dim=1)
        shift, scale, log_scale = self._params(z1)
        z2 = z2 + shift
        if scale is not None:
            z2 = z2 * scale
            logdet = logdet + log_scale.flatten(1).sum(1)
        return torch.cat([z1, z2], dim=1), logdet

    def reverse(self, y: torch.Tensor, logdet: torch.Tensor):
        z1, z2 = y.chunk(2, dim=1)
        shift, scale, log_scale = self._params(z1)
        if scale is not None:
            z2 = z2 / scale
            logdet = logdet - log_scale.flatten(1).sum(1)
        return torch.cat([z1, z2 - shift], dim=1), logdet
