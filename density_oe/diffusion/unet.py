"""The score network: a small U-Net predicting the noise ``eps`` of ``z_t = alpha_t x + sigma_t eps``.

Layout (DDPM's U-Net, Ho et al. 2020, scaled down; no attention), for ``L`` resolutions of ``N`` residual blocks
and base width ``C``::

    conv_in (3 -> C)
    down, level i = 0..L-1:  N x ResBlock(C * mult_i), then (i < L-1) a stride-2 conv halving H and W
    middle:                  ResBlock, ResBlock at the lowest resolution
    up, level i = L-1..0:    N x ResBlock on [h, skip of the same level], then (i > 0) nearest 2x + conv
    out:                     GroupNorm, swish, zero-initialised conv (C -> 3);    eps_hat = z + out

``mult_i = min(2^i, 2)`` (DDPM's CIFAR-10 (1, 2, 2, 2)).  Every block is conditioned on ``gamma_t`` as VDM does it:
``gamma`` normalised to [0, 1] over the schedule, times 1000, a sinusoidal embedding of width C and a two-layer
swish MLP of width 4C, which gives every block a per-channel scale and shift after its second GroupNorm.  ``eps_hat = z + conv_out(h)`` with a
zero-initialised ``conv_out`` (VDM ``model_vdm.py``): at initialisation ``eps_hat = z``.

Deliberate differences from VDM's CIFAR-10 net (C = 128, 32 blocks, all at 32x32, 30.6 M parameters): this one
halves the resolution ``L - 1`` times, which costs far fewer operations per image, so that the 2-core CPU can
train it at all; the bound does not depend on the network, only its tightness does.  GroupNorm normalises each
image on its own, so an image's output does not depend on the rest of its batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _groups(channels: int) -> int:
    """GroupNorm groups: 4 channels each, at most 32 (DDPM's 32 groups at C = 128).  Never one channel per group:
    a group of one channel would erase every per-channel constant added before it."""
    g = min(32, max(1, channels // 4))
    while channels % g:
        g -= 1
    return g


def timestep_embedding(gamma01: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[B, dim]`` of ``1000 * gamma01`` (VDM's conditioning; DDPM's formula)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=gamma01.device, dtype=torch.float32) /
                      max(half - 1, 1))
    args = 1000.0 * gamma01.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


class ResBlock(nn.Module):
    """GN, swish, conv, GN with the embedding's scale and shift, swish, dropout, conv, plus a (1x1 where widths
    differ) skip.  The embedding acts after the second GroupNorm (improved DDPM's ``use_scale_shift_norm``), so the
    normalisation cannot remove it."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """``UNet(channels, levels, blocks, dropout)(z [B, 3, H, W], gamma01 [B]) -> eps_hat`` (H, W multiples of
    ``2^(levels - 1)``)."""

    def __init__(self, channels: int, levels: int, blocks: int, dropout: float, in_channels: int = 3):
        super().__init__()
        c = channels
        self.emb_dim = c
        self.emb_mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.SiLU(), nn.Linear(4 * c, 4 * c), nn.SiLU())
        emb = 4 * c
        widths = [c * min(2 ** i, 2) for i in range(levels)]
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = c
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(prev if j == 0 else w, w, emb, dropout) for j in range(blocks)]))
            prev = w
            self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1) if i < levels - 1 else nn.Identity())
        self.mid = nn.ModuleList([ResBlock(prev, prev, emb, dropout), ResBlock(prev, prev, emb, dropout)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            w = widths[i]
            self.up.append(nn.ModuleList([ResBlock((prev if j == 0 else w) + w, w, emb, dropout)
                                          for j in range(blocks)]))
            prev = w
            self.upsample.append(nn.Conv2d(w, widths[i - 1], 3, padding=1) if i > 0 else nn.Identity())
            prev = widths[i - 1] if i > 0 else w
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, z: torch.Tensor, gamma01: torch.Tensor) -> torch.Tensor:
        emb = self.emb_mlp(timestep_embedding(gamma01, self.emb_dim).to(z.dtype))
        h = self.conv_in(z)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, emb)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
