"""Pre-activation Wide ResNet (Zagoruyko & Komodakis 2016) as built by the OE reference.

Parameter names follow the reference's ``CIFAR/models/wrn.py`` so that its state
dicts load with ``strict=True``: ``conv1``, ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,
conv2,convShortcut}``, ``bn1``, ``fc``.

Block semantics replicated from the reference (they matter for output equality):

* when a block changes the channel count, ``relu(bn1(x))`` replaces ``x`` and the
  1x1 ``convShortcut`` is applied to that *pre-activated* input;
* when it does not, the identity shortcut carries the raw ``x``;
* dropout sits between ``relu(bn2(.))`` and ``conv2``.

Deliberate differences from the reference:

* the final pooling is a global average (``adaptive_avg_pool2d(., 1)``) instead of
  ``avg_pool2d(., 8)``; the two are identical for 32x32 inputs (8x8 final maps)
  and the global version also works for the tiny images used in tests;
* ``norm="none"`` replaces every BatchNorm by the identity (no parameters).  Not a
  reference model: it exists so that multi-process runs can be compared exactly
  with single-process ones on CPU, where SyncBatchNorm is unavailable.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from oe_core.errors import ConfigError

NORMS = ("batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


class BasicBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0,
                 norm: str = "batch"):
        super().__init__()
        self.bn1 = _norm(norm, in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _norm(norm, out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = (None if self.equal_in_out
                             else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(pre)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(pre)
        return shortcut + out


class NetworkBlock(nn.Module):
    """``nb_layers`` BasicBlocks; only the first one changes width and stride."""

    def __init__(self, nb_layers: int, in_planes: int, out_planes: int, stride: int,
                 drop_rate: float = 0.0, norm: str = "batch"):
        super().__init__()
        self.layer = nn.Sequential(*[
            BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1,
                       drop_rate, norm)
            for i in range(nb_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``: channels 16 -> 16k -> 32k -> 64k, (depth-4)/6 blocks per stage.

    Initialisation as the reference: He-normal convolutions (fan-out), BatchNorm
    weight 1 / bias 0, linear bias 0 (linear weight keeps PyTorch's default).
    """

    def __init__(self, depth: int = 40, num_classes: int = 10, widen_factor: int = 2,
                 drop_rate: float = 0.3, norm: str = "batch"):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
        if widen_factor < 1:
            raise ConfigError(f"WRN widen factor must be >= 1, got {widen_factor}")
        if norm not in NORMS:
            raise ConfigError(f"WRN norm must be one of {list(NORMS)}, got {norm!r}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate, norm)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate, norm)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate, norm)
        self.bn1 = _norm(norm, widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)
        self.num_features = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature maps [B, 64k, H/4, W/4] (after the final BN-ReLU, before pooling)."""
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.relu(self.bn1(out))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, 64k] (after the final BN-ReLU and global pooling)."""
        return F.adaptive_avg_pool2d(self.feature_maps(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
