"""An in-memory dataset over a uint8 image array (N, H, W, 3), following the data contract: without a transform an
item is ``(torch.uint8 tensor (3, H, W), target)``; with one, the transform receives an RGB ``PIL.Image``."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError


def image_item(hwc: np.ndarray, transform: Optional[Callable]) -> Any:
    """One (H, W, 3) uint8 array -> uint8 tensor (3, H, W), or ``transform(PIL RGB image)``."""
    if transform is None:
        return torch.from_numpy(np.array(hwc.transpose(2, 0, 1), dtype=np.uint8, order="C"))
    return transform(Image.fromarray(np.ascontiguousarray(hwc, dtype=np.uint8)))


def check_image_array(images: np.ndarray, what: str) -> None:
    """Raise :class:`DataError` unless ``images`` is a uint8 array of shape (N, H, W, 3)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        desc = (f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray)
                else type(images).__name__)
        raise DataError(f"{what}: expected a uint8 array of shape (N, H, W, 3), got {desc}")


class UInt8ImageArray(Dataset):
    """Dataset over ``images`` (N, H, W, 3) uint8, any array view (a memory map, a transposed view; items are
    copied out one at a time), with ``targets`` (N ints, or one int for all); ``classes`` may name the classes."""

    def __init__(self, images: np.ndarray, targets: Sequence[int] | np.ndarray | int,
                 transform: Optional[Callable] = None, classes: Optional[Sequence[str]] = None):
        check_image_array(images, "UInt8ImageArray")
        n = len(images)
        if isinstance(targets, (int, np.integer)):
            t = np.full(n, int(targets), dtype=np.int64)
        else:
            t = np.asarray(targets)
            if t.ndim != 1 or len(t) != n or not np.issubdtype(t.dtype, np.integer):
                raise DataError(f"UInt8ImageArray: targets must be {n} integers (one per image), "
                                f"got {t.dtype} array of shape {t.shape}")
            t = t.astype(np.int64)
        self.images, self.targets, self.transform = images, t, transform
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return image_item(self.images[index], self.transform), int(self.targets[index])
