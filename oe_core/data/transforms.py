"""Image transforms: uint8 conversion, batch augmentation on any device, input scaling.

Batches stay uint8 until they reach the device: classifiers :func:`normalize` them with the reference's CIFAR
mean/std (also for CIFAR-100), density models and the raw noise sets take :func:`to_unit_range`.  Augmentation runs
on uint8 batches (:func:`random_crop_flip`), not as PIL transforms in workers (docs/paper.md).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import OEError

CIFAR_MEAN: tuple[float, float, float] = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD: tuple[float, float, float] = (63.0 / 255, 62.1 / 255, 66.7 / 255)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> ``torch.uint8`` tensor (3, H, W) in RGB order (no scaling)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), order="C"))


def _check_uint8(x: torch.Tensor, where: str, batch: bool = False) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise OEError(f"{where} expects a torch.uint8 tensor, got {got}")
    if batch and x.dim() != 4:
        raise OEError(f"{where} expects a batch (B, C, H, W), got shape {tuple(x.shape)}")


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator: Optional[torch.Generator] = None,
                     flip: bool = True) -> torch.Tensor:
    """Random ``padding``-pixel zero-padded crop back to (H, W) plus a random horizontal flip, of a uint8 batch
    ``x`` (B, C, H, W) on any device (same shape, dtype and device out).  Per image, the crop offsets are uniform on
    ``0..2*padding`` and the flip happens with probability 1/2 (``flip=False``: never; ``padding=0``: flips only, the
    reference's SVHN outlier augmentation).  The draws come from ``generator`` on its own device (so results do not
    depend on ``x``'s), in a fixed order: offsets (B, 2) then flips (B,)."""
    _check_uint8(x, "random_crop_flip", batch=True)
    if padding < 0:
        raise OEError(f"random_crop_flip: padding must be >= 0, got {padding}")
    b, c, h, w = x.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator, device=gen_device).to(x.device)
    flips = torch.randint(0, 2, (b,), generator=generator, device=gen_device).to(x.device).bool()
    if not flip:
        flips.zero_()
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = offsets[:, :1] + torch.arange(h, device=x.device)            # (B, H)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)            # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def normalize(x: torch.Tensor, mean: Sequence[float] = CIFAR_MEAN,
              std: Sequence[float] = CIFAR_STD) -> torch.Tensor:
    """uint8 (..., C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel (torchvision's
    ``ToTensor`` + ``Normalize``), computed on ``x``'s device."""
    _check_uint8(x, "normalize")
    if x.dim() < 3 or len(mean) != x.shape[-3] or len(std) != x.shape[-3]:
        raise OEError(f"normalize: {len(mean)} means / {len(std)} stds for images of shape {tuple(x.shape)}")
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return (x.float() / 255 - m) / s


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [-1, 1] as ``x / 127.5 - 1`` (density models; raw noise input)."""
    _check_uint8(x, "to_unit_range")
    return x.float() / 127.5 - 1
