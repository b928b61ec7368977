"""uint8 image batches -> classifier inputs, on the device.

Natural-image sets are normalised with the reference's CIFAR mean/std (also for
CIFAR-100 and every OOD set); sets whose registry entry has ``normalize=False``
(the synthetic noise) are fed "raw" in [-1, 1], as the reference feeds its noise.
"""
from __future__ import annotations

import torch

from oe_core.data.transforms import normalize, to_unit_range


def model_input(x: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32: ``(x/255 - mean)/std`` if ``normalized`` else ``x/127.5 - 1``."""
    return normalize(x) if normalized else to_unit_range(x)
