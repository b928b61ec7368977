"""Classifier architectures of the OE reference, with its state-dict key layout."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from oe_core.errors import ConfigError

from .allconv import AllConvNet
from .wrn import NORMS, WideResNet

ARCHS: dict[str, Callable[..., nn.Module]] = {
    "wrn": lambda num_classes, depth, widen_factor, dropout, norm: WideResNet(
        depth=depth, num_classes=num_classes, widen_factor=widen_factor, drop_rate=dropout, norm=norm),
    "allconv": lambda num_classes, depth, widen_factor, dropout, norm: AllConvNet(num_classes),
}
# The final linear layer's weight [num_classes, features] in each architecture's state dict.
HEAD_KEYS: dict[str, str] = {"wrn": "fc.weight", "allconv": "classifier.weight"}


def build_model(arch: str, num_classes: int, depth: int = 40, widen_factor: int = 2,
                dropout: float = 0.3, norm: str = "batch") -> nn.Module:
    """Build ``arch`` ("wrn" or "allconv"); depth/width/dropout/norm apply to the WRN only."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    if num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
    return ARCHS[arch](num_classes, depth, widen_factor, dropout, norm)


def feature_layers(net: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """``(feature_maps, head)`` of a suite classifier: ``net(x) == head(feature_maps(x).mean((2, 3)))``.

    For the detectors that work on features (Mahalanobis, ViM, KNN, ReAct); the maps are ``[B, C, H, W]``
    (AllConv's are already pooled to 1x1)."""
    if isinstance(net, WideResNet):
        return net.feature_maps, net.fc
    if isinstance(net, AllConvNet):
        return net.features, net.classifier
    raise ConfigError(f"feature-based detectors need a WRN or AllConv classifier, got {type(net).__name__}")


__all__ = ["ARCHS", "HEAD_KEYS", "NORMS", "AllConvNet", "WideResNet", "build_model", "feature_layers"]
