"""``toy-shapes``: a tiny seeded 10-class set of coloured shapes for tests and quick demos (registered with the mini
benchmark's sets, by the same plugin).

One filled square or disc on a dark noisy background, whose *colour* is the class: a small WRN learns it in a few
epochs on a CPU.  Options ``size`` (default 16), ``seed`` (default 0) and ``n`` (default 512 train / 256 test).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from oe_core.data.arrays import UInt8ImageArray
from oe_core.data.registry import register_dataset
from oe_core.errors import ConfigError

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [250, 190, 190], [255, 255, 255]],
                   dtype=np.int64)
DEFAULT_N = {"train": 512, "test": 256}


def make_shapes(n: int, size: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, size, size, 3) uint8 and their labels; train/test use disjoint random streams."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.integers(0, len(PALETTE), size=n)
    grey = rng.integers(0, 90, size=(n, 1, 1, 1))
    images = grey + rng.normal(0.0, 8.0, size=(n, size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        side = int(rng.integers(max(2, size // 3), max(3, (2 * size) // 3) + 1))
        top, left = rng.integers(0, size - side + 1, size=2)
        if rng.random() < 0.5:
            mask = (yy >= top) & (yy < top + side) & (xx >= left) & (xx < left + side)
        else:
            r = side / 2
            mask = (yy + 0.5 - top - r) ** 2 + (xx + 0.5 - left - r) ** 2 <= r * r
        images[i][mask] = PALETTE[labels[i]] + rng.integers(-20, 21, size=3)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels.astype(np.int64)


@register_dataset("toy-shapes", splits=("train", "test"), role="id", num_classes=len(PALETTE),
                  needs_root=False, default_split="test", tags=("toy",),
                  description="toy: 10 classes of coloured shapes on noise (tests and demos)")
def build_toy_shapes(root: Optional[Path], split: str, transform: Optional[Callable], download: bool,
                     size: int = 16, seed: int = 0, n: Optional[int] = None) -> UInt8ImageArray:
    n = DEFAULT_N[split] if n is None else n
    if size < 4 or n < 1:
        raise ConfigError(f"dataset 'toy-shapes': size must be >= 4 and n >= 1, got size={size}, n={n}")
    images, labels = make_shapes(n, size, seed, split)
    return UInt8ImageArray(images, labels, transform)
