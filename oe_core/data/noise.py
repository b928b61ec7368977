"""Synthetic OOD test sets: Gaussian, Rademacher, Blobs (the reference's) and Uniform, each constructed in [-1, 1]
by its function (``gaussian_noise``, ...) and stored as uint8 (:func:`quantise`; ``normalize=False``: classifiers
get raw [-1, 1] values, as in the reference).  Image ``i`` comes from ``numpy.random.default_rng([seed, crc32(kind),
i])``, so it does not depend on ``n``.  Differences from the reference: docs/paper.md.
"""
from __future__ import annotations

import zlib
from typing import Any, Callable, Optional

import numpy as np
from skimage.filters import gaussian as gaussian_blur
from torch.utils.data import Dataset

from ..errors import OEError
from .arrays import image_item
from .registry import register_dataset

DEFAULT_POOL = 20_000


def quantise(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 ``round((x + 1) * 127.5)`` (clipped to 0..255)."""
    return np.clip(np.rint((np.asarray(x, dtype=np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def gaussian_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """``clip(N(0, 0.5^2), -1, 1)`` of shape (size, size, 3)."""
    return np.clip(rng.normal(0.0, 0.5, (size, size, 3)), -1.0, 1.0)


def rademacher_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """``Bernoulli(0.5) * 2 - 1`` of shape (size, size, 3)."""
    return rng.binomial(1, 0.5, (size, size, 3)).astype(np.float64) * 2 - 1


def blobs_from_mask(mask: np.ndarray) -> np.ndarray:
    """Blur a {0, 1} (H, W, 3) mask with sigma 1.5 over all three axes (channel axis included, the reference's
    ``multichannel=False``), zero values < 0.75, map to [-1, 1] with ``* 2 - 1``."""
    x = gaussian_blur(mask.astype(np.float64), sigma=1.5, channel_axis=None)
    x[x < 0.75] = 0.0
    return x * 2 - 1


def blobs_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Blobs: ``blobs_from_mask(Bernoulli(0.7))`` of shape (size, size, 3)."""
    return blobs_from_mask(rng.binomial(1, 0.7, (size, size, 3)))


def uniform_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """``U[-1, 1]`` of shape (size, size, 3) (the reference's ``--validate`` set)."""
    return rng.uniform(-1.0, 1.0, (size, size, 3))


class NoiseImages(Dataset):
    """``n`` lazily generated noise images of one ``kind``, as uint8; target ``-1``."""

    def __init__(self, kind: str, make: Callable[[np.random.Generator, int], np.ndarray], n: int = DEFAULT_POOL,
                 size: int = 32, seed: int = 0, transform: Optional[Callable] = None):
        if n < 1 or size < 1 or seed < 0:
            raise OEError(f"dataset {kind!r}: need n >= 1, size >= 1 and seed >= 0 (got n={n}, size={size}, "
                          f"seed={seed})")
        self.kind, self.make, self.n, self.size, self.seed, self.transform = kind, make, n, size, seed, transform
        self._stream = zlib.crc32(kind.encode())

    def __len__(self) -> int:
        return self.n

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 (size, size, 3)."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        rng = np.random.default_rng([self.seed, self._stream, index % self.n])
        return quantise(self.make(rng, self.size))

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return image_item(self.image(index), self.transform), -1


def _noise_set(name: str, make: Callable[[np.random.Generator, int], np.ndarray], description: str,
               tags: tuple[str, ...]) -> None:
    """Register the noise set ``name``: ``make(rng, size)`` draws one image in [-1, 1]."""
    def build(root: Any, split: str, transform: Optional[Callable], download: bool, *,
              n: int = DEFAULT_POOL, size: int = 32, seed: int = 0) -> NoiseImages:
        return NoiseImages(name, make, n, size, seed, transform)

    build.__doc__ = f"{description}; ``n`` images of ``size`` x ``size``, deterministic under ``seed``."
    register_dataset(name, splits=("test",), description=description, role="noise", normalize=False,
                     needs_root=False, tags=tags)(build)


_noise_set("gaussian", gaussian_noise, "Gaussian noise clip(N(0, 0.5^2), -1, 1)", ("paper-ood",))
_noise_set("rademacher", rademacher_noise, "Rademacher noise, each value -1 or 1", ("paper-ood",))
_noise_set("blobs", blobs_noise, "Blobs: blurred Bernoulli(0.7), thresholded at 0.75", ("paper-ood",))
_noise_set("uniform", uniform_noise, "Uniform noise U[-1, 1] (the reference's validation set)", ("validation",))
