"""A dataset's images brought to another size with the paper's protocol for natural images: ``Resize(size)``
(shorter side, bilinear with antialiasing) then ``CenterCrop(size)``, on the uint8 tensors; targets unchanged."""
from __future__ import annotations

from typing import Any

import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

RESIZE_NAME = "Resize + CenterCrop (bilinear, antialiased)"


def resize_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 image (3, H, W) -> uint8 (3, *size): shorter side to ``min(size)``, then a center crop."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    resized = TF.resize(x, [min(size)] if size[0] == size[1] else list(size), antialias=True)
    return TF.center_crop(resized, list(size))


class Resized(Dataset):
    """``dataset`` with every image resized to ``size`` (H, W) by :func:`resize_uint8`."""

    def __init__(self, dataset: Dataset, size: tuple[int, int]):
        self.dataset, self.size = dataset, (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        x, target = self.dataset[index]
        return resize_uint8(x, self.size), target
