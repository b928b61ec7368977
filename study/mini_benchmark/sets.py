"""How a mini set is built, cached and registered: :func:`register_mini_set` puts a builder into ``oe_core``'s
dataset registry, :func:`build_mini` returns its arrays from the cache or builds them.

Options of every mini set: ``size`` (side in pixels, default 32), ``seed`` (default 0), ``n`` (images in the
split; defaults in :data:`DEFAULT_N`) and ``cache_dir`` (see :mod:`study.mini_benchmark.cache`).  A set is a pure
function of (set, split, size, seed, n, version) and is cached under that key.  ``root`` and ``download`` are
accepted and unused.  All images are uint8 (256 levels).
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from oe_core.data.arrays import UInt8ImageArray
from oe_core.data.registry import dataset_info, register_dataset
from oe_core.errors import ConfigError

from .cache import MiniArrays, cached_build, default_cache_dir

BUILDER_VERSION = 2   # the cache-key version of the sets registered without their own

DEFAULT_N: dict[tuple[str, str], int] = {}   # (set, split) -> images when ``n`` is not given
DEFAULT_N_OOD = 1000                          # ... for every other split

_BUNDLED = "built from images bundled with scikit-image, scikit-learn and matplotlib (no files needed)"
SKIMAGE_URL = "https://scikit-image.org/docs/stable/api/skimage.data.html"

Build = Callable[[str, int, int, int], MiniArrays]   # build(split, size, seed, n)
_BUILDS: dict[str, Build] = {}
_VERSIONS: dict[str, Callable[[], str]] = {}  # sets with their own cache-key version


def seeded_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator for ``(seed, *keys)``; strings enter through their CRC-32."""
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys])


def build_mini(name: str, split: str, size: int = 32, seed: int = 0, n: Optional[int] = None,
               cache_dir: str | Path | None = None) -> MiniArrays:
    """The arrays of mini set ``name``/``split`` (with construction metadata), from the cache or built."""
    if name not in _BUILDS:
        raise ConfigError(f"unknown mini set {name!r}; known: {', '.join(sorted(_BUILDS))}")
    splits = dataset_info(name).splits
    if split not in splits:
        raise ConfigError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(splits)}")
    n = DEFAULT_N.get((name, split), DEFAULT_N_OOD) if n is None else n
    for opt, value, low in (("size", size, 8), ("seed", seed, 0), ("n", n, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"dataset {name!r}: option {opt} must be an integer >= {low}, got {value!r}")
    if size > 256:
        raise ConfigError(f"dataset {name!r}: option size must be <= 256, got {size}")
    key = {"name": name, "split": split, "size": int(size), "seed": int(seed), "n": int(n),
           "version": _VERSIONS[name]() if name in _VERSIONS else BUILDER_VERSION}
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return cached_build(key, lambda: _BUILDS[name](split, int(size), int(seed), int(n)), folder)


def register_mini_set(name: str, build: Build, description: str, role: str, splits: tuple[str, ...],
                      url: str = SKIMAGE_URL, classes: Optional[tuple[str, ...]] = None, files: str = _BUNDLED,
                      version: Optional[Callable[[], str]] = None,
                      default_n: Optional[dict[str, int]] = None) -> None:
    """Register mini set ``name``: ``build(split, size, seed, n)`` makes its arrays, cached by :func:`build_mini`
    under a key whose ``version`` is ``version()`` (default :data:`BUILDER_VERSION`)."""
    _BUILDS[name] = build
    if version is not None:
        _VERSIONS[name] = version
    DEFAULT_N.update({(name, split): k for split, k in (default_n or {}).items()})

    def builder(root: Optional[Path], split: str, transform: Optional[Callable], download: bool, size: int = 32,
                seed: int = 0, n: Optional[int] = None, cache_dir: str | Path | None = None) -> UInt8ImageArray:
        a = build_mini(name, split, size=size, seed=seed, n=n, cache_dir=cache_dir)
        return UInt8ImageArray(a.images, a.targets, transform, classes=classes)

    builder.__doc__ = f"{description} Options: size, seed, n, cache_dir (see study.mini_benchmark.sets)."
    register_dataset(name, splits=splits, description=description, files=files, url=url, role=role,
                     num_classes=len(classes) if classes else None, needs_root=False,
                     default_split=splits[-1], tags=("mini",))(builder)
