"""The all-convolutional network (Springenberg et al. 2015) as built by the OE reference.

Parameter names follow the reference's ``CIFAR/models/allconv.py``: a single
``features`` ``nn.Sequential`` built from the layer list
``[96, 96, 96, 'Md', 192, 192, 192, 'Md', 'nopad', 'NIN', 'NIN', 'A']`` and a linear
``classifier``.  Every convolution is followed by BatchNorm and a GELU
approximated as ``x * sigmoid(1.702 x)``; ``'Md'`` is 2x2 max-pooling then
dropout 0.5; ``'nopad'`` a 3x3 unpadded conv; ``'NIN'`` a 1x1 conv *with padding
1* (each grows the map by 2); ``'A'`` an 8x8 average pool.  For 32x32 inputs the
last map is 10x10 and the pool averages its top-left 8x8 window -- a quirk of
the reference kept here so that its weights give the same outputs.  The network
therefore needs 32x32 inputs (larger ones give a larger final map and fail at
the classifier).
"""
from __future__ import annotations

import math

import torch
from torch import nn

LAYOUT = (96, 96, 96, "Md", 192, 192, 192, "Md", "nopad", "NIN", "NIN", "A")


class QuickGELU(nn.Module):
    """GELU approximated by ``x * sigmoid(1.702 x)`` (Hendrycks & Gimpel 2016)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _conv_bn_gelu(cin: int, cout: int, kernel: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=padding), nn.BatchNorm2d(cout), QuickGELU()]


def make_layers(layout: tuple = LAYOUT) -> nn.Sequential:
    """Build the ``features`` stack from the reference's layer list (indices match its keys)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item == "Md":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2), nn.Dropout(p=0.5)]
        elif item == "A":
            layers += [nn.AvgPool2d(kernel_size=8)]
        elif item == "NIN":
            layers += _conv_bn_gelu(channels, channels, 1, 1)
        elif item == "nopad":
            layers += _conv_bn_gelu(channels, channels, 3, 0)
        else:
            layers += _conv_bn_gelu(channels, int(item), 3, 1)
            channels = int(item)
    return nn.Sequential(*layers)


class AllConvNet(nn.Module):
    """AllConv with widths 96/192; He-normal (fan-out) conv init, BN 1/0, linear bias 0."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = make_layers(LAYOUT)
        self.classifier = nn.Linear(192, num_classes)
        self.num_features = 192
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
