"""Tiny Images outlier sets: the "300K Random Images" ``.npy`` and the 80M ``tiny_images.bin``; target ``-1``, each
file opened lazily in each process (DataLoader workers reopen it instead of receiving a pickled copy).  How the 80M
set's count, CIFAR-overlap replacement and per-epoch offset differ from the reference: docs/paper.md.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

import numpy as np
from torch.utils.data import Dataset

from .arrays import image_item
from .registry import data_error, register_dataset
from .sources import Source

TINY_BYTES = 32 * 32 * 3
NPY_300K = "300K_random_images.npy"
BIN_80M = "tiny_images.bin"
CIFAR_IDXS_80M = "80mn_cifar_idxs.txt"


def _open_npy(name: str, path: Path) -> np.ndarray:
    if not path.is_file():
        raise data_error(name, path.parent, f"missing {path.name}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise data_error(name, path.parent, f"{path.name} is corrupt or truncated: {e}") from e
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (32, 32, 3):
        desc = f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise data_error(name, path.parent, f"{path.name} holds a {desc}, expected uint8 (N, 32, 32, 3)")
    return arr


class TinyImages300K(Dataset):
    """The "300K Random Images" array, memory-mapped read-only (never read whole)."""

    def __init__(self, path: Path, transform: Optional[Callable] = None, name: str = "tinyimages300k"):
        self.path, self.name, self.transform = Path(path), name, transform
        self._array: Optional[np.ndarray] = _open_npy(name, self.path)
        self._len = len(self._array)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if self._array is None:
            self._array = _open_npy(self.name, self.path)
        return image_item(self._array[index], self.transform), -1


def read_exclusions(name: str, path: Path, count: int) -> np.ndarray:
    """Parse the 1-based CIFAR-overlap list -> sorted unique 0-based indices below ``count``."""
    if not path.is_file():
        raise data_error(name, path.parent, f"missing {path.name} (the CIFAR-overlap list; "
                                            f"pass exclude_cifar=False to use every image)")
    try:
        tokens = path.read_text().split()
    except (OSError, UnicodeDecodeError) as e:
        raise data_error(name, path.parent, f"cannot read {path.name}: {e}") from e
    values = np.empty(len(tokens), dtype=np.int64)
    for i, tok in enumerate(tokens):
        try:
            values[i] = int(tok)
        except ValueError:
            raise data_error(name, path.parent, f"{path.name}: entry {i + 1} ({tok!r}) is not an integer") from None
        if values[i] < 1:
            raise data_error(name, path.parent, f"{path.name}: entry {i + 1} is {tok}; the list is 1-based "
                                                f"(indices >= 1)")
    zero_based = values - 1
    return np.unique(zero_based[zero_based < count])


def bin_image_count(name: str, path: Path) -> int:
    """Number of 3072-byte images in ``path``; :class:`DataError` if missing or of a bad size."""
    if not path.is_file():
        raise data_error(name, path.parent, f"missing {path.name}")
    size = path.stat().st_size
    if size == 0 or size % TINY_BYTES:
        raise data_error(name, path.parent, f"{path.name} has {size} bytes, "
                                            f"not a positive multiple of {TINY_BYTES} (one 32x32x3 image)")
    return size // TINY_BYTES


class TinyImages80M(Dataset):
    """``tiny_images.bin``: 3072 bytes per image, read by seeking, reshaped (32, 32, 3) in Fortran order (the file
    is MATLAB column-major), as the reference does; ``excluded``: sorted 0-based indices to replace."""

    def __init__(self, path: Path, excluded: Optional[np.ndarray] = None, seed: int = 0,
                 transform: Optional[Callable] = None, name: str = "tinyimages80m"):
        self.path, self.name = Path(path), name
        self._len = bin_image_count(name, self.path)
        self.excluded = np.zeros(0, dtype=np.int64) if excluded is None else np.asarray(excluded, dtype=np.int64)
        if len(self.excluded) >= self._len:
            raise data_error(name, self.path.parent, f"every one of the {self._len} images is on the exclusion list")
        self.seed, self.transform = seed, transform
        self._file: Optional[BinaryIO] = None
        self._pid: Optional[int] = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}

    def __len__(self) -> int:
        return self._len

    def _is_excluded(self, i: int) -> bool:
        k = int(np.searchsorted(self.excluded, i))
        return k < len(self.excluded) and int(self.excluded[k]) == i

    def source_index(self, index: int) -> int:
        """The image actually read for ``index``: itself, or, if excluded, the first ``j`` drawn uniformly with
        ``numpy.random.default_rng([seed, index])`` that is not."""
        if not self._is_excluded(index):
            return index
        rng = np.random.default_rng([self.seed, index])
        while True:
            j = int(rng.integers(self._len))
            if not self._is_excluded(j):
                return j

    def _read(self, i: int) -> np.ndarray:
        if self._file is None or self._pid != os.getpid():  # reopen in each worker process
            self._file = open(self.path, "rb")
            self._pid = os.getpid()
        self._file.seek(i * TINY_BYTES)
        data = self._file.read(TINY_BYTES)
        if len(data) != TINY_BYTES:
            raise data_error(self.name, self.path.parent, f"{self.path.name} ended early at image {i} "
                                                          f"(file changed after opening?)")
        return np.frombuffer(data, dtype=np.uint8).reshape(32, 32, 3, order="F")

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} images")
        return image_item(self._read(self.source_index(index % self._len)), self.transform), -1


@register_dataset("tinyimages300k", splits=("train",), default_split="train",
                  description="300K Random Images (80M Tiny Images subset, CIFAR/Places/LSUN classes removed)",
                  files=NPY_300K, url="https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy",
                  role="outlier", sources=(Source(NPY_300K, "https://people.eecs.berkeley.edu/~hendrycks/"
                                                            f"{NPY_300K}", target=NPY_300K),))
def build_tinyimages300k(root: Path, split: str, transform: Optional[Callable], download: bool) -> TinyImages300K:
    """The 300K ``.npy``, memory-mapped."""
    return TinyImages300K(root / NPY_300K, transform)


@register_dataset("tinyimages80m", splits=("train",), default_split="train",
                  description="80 Million Tiny Images (79,302,017 images) minus the CIFAR overlap; the paper's D_OE",
                  files=f"{BIN_80M} and {CIFAR_IDXS_80M}",
                  url=("https://archive.org/details/80-million-tiny-images-2-of-2 (tiny_images.bin); "
                       "https://github.com/hendrycks/outlier-exposure/blob/master/utils/80mn_cifar_idxs.txt"),
                  role="outlier",
                  withdrawn=("80 Million Tiny Images was withdrawn by its creators (MIT, June 2020) and is not "
                             "fetched; use the 300K Random Images subset instead: `python -m oe_core.data fetch "
                             "tinyimages300k`, then --outliers tinyimages300k (or place your own copy of "
                             f"{BIN_80M} and {CIFAR_IDXS_80M} under the data root)"))
def build_tinyimages80m(root: Path, split: str, transform: Optional[Callable], download: bool, *,
                        exclude_cifar: bool = True, seed: int = 0) -> TinyImages80M:
    """``tiny_images.bin``; with ``exclude_cifar`` the images ``80mn_cifar_idxs.txt`` lists are replaced."""
    path = root / BIN_80M
    count = bin_image_count("tinyimages80m", path)
    excluded = read_exclusions("tinyimages80m", root / CIFAR_IDXS_80M, count) if exclude_cifar else None
    return TinyImages80M(path, excluded, seed, transform)
