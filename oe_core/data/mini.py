"""The offline mini benchmark: CIFAR-like in-distribution, OE outliers and OOD test sets
made only from images that ship inside installed packages (no download, seconds to build).

Registered sets (``get_dataset("mini-...")``; none needs ``--data-root``): ``mini-id``
(train/val/test, 8 classes, one per bundled photograph), ``mini-outliers`` (the OE set),
``mini-val-outliers`` (the validation OOD set), and the test OOD sets ``mini-textures``,
``mini-faces``, ``mini-svhn`` and ``mini-svhn-saturated``.  How each set is drawn, why,
and how the design was chosen on validation sets: ``docs/mini_benchmark.md``.

The noise OOD sets (``gaussian``, ``rademacher``, ``blobs``) come from the main
registry with its ``size=`` option.  All images are uint8 (256 levels).

Options of every mini set: ``size`` (side in pixels, default 32), ``seed``
(default 0), ``n`` (images in the split; defaults in :data:`DEFAULT_N`) and
``cache_dir`` (see :mod:`oe_core.data.mini_cache`).  A set is a pure function
of (set, split, size, seed, n, :data:`BUILDER_VERSION`) and is cached under
that key.  ``root`` and ``download`` are accepted and unused.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError
from .arrays import UInt8ImageArray
from .mini_cache import MiniArrays, cached_build, default_cache_dir
from .mini_crops import as_rgb, random_square_boxes, render_crops, tint_colours, tint_grey
from .mini_digits import render_digits
from .mini_sources import load_digit_glyphs, load_lfw_faces, load_photo
from .registry import dataset_info, register_dataset

BUILDER_VERSION = 2

ID_CLASSES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower", "grace_hopper")
OUTLIER_SOURCES = ("hubble_deep_field", "immunohistochemistry", "retina", "gift", "colorwheel", "logo",
                   "camera", "coins", "moon")
VAL_OUTLIER_SOURCES = ("cell", "clock", "microaneurysms")  # held out of OE training: validation only
TEXTURE_SOURCES = ("brick", "grass", "gravel", "text", "page")

DEFAULT_N = {("mini-id", "train"): 5000, ("mini-id", "val"): 1000, ("mini-id", "test"): 1000,
             ("mini-outliers", "train"): 5000}
DEFAULT_N_OOD = 1000
TINT_SATURATION = (0.15, 0.5)
ID_SIDE = (0.5, 1.0)  # mini-id crop side as a fraction of the photo's shorter side

_SPLITS = ("train", "val", "test")
_BUNDLED = "built from images bundled with scikit-image, scikit-learn and matplotlib (no files needed)"
_SKIMAGE_URL = "https://scikit-image.org/docs/stable/api/skimage.data.html"


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator for ``(seed, *keys)``; strings enter through their CRC-32."""
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys])


def _build_id(split: str, size: int, seed: int, n: int) -> MiniArrays:
    k = len(ID_CLASSES)
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    parts, boxes, flips = [], [], []
    for c, name in enumerate(ID_CLASSES):
        photo = load_photo(name)
        rng = _rng(seed, "mini-id", split, c)
        whole = (0.0, 0.0, float(photo.shape[1]), float(photo.shape[0]))      # every split crops the whole photo
        b = random_square_boxes(rng, counts[c], whole, ID_SIDE)
        f = rng.uniform(size=counts[c]) < 0.5
        parts.append(render_crops(as_rgb(photo), b, f, size))
        boxes.append(b)
        flips.append(f)
    targets = np.repeat(np.arange(k), counts)
    order = _rng(seed, "mini-id", split, "order").permutation(n)
    return MiniArrays(np.concatenate(parts)[order], targets[order],
                      {"source": targets[order], "box": np.concatenate(boxes)[order],
                       "flip": np.concatenate(flips)[order]})


def _thumbnails(set_name: str, sources: tuple[str, ...], size: int, seed: int, n: int,
                side: tuple[float, float], rotate: bool) -> MiniArrays:
    """Crops of ``sources`` (drawn uniformly per image); grey sources toned with p=0.5."""
    rng = _rng(seed, set_name)
    src = rng.integers(len(sources), size=n)
    flip = rng.uniform(size=n) < 0.5
    rot = rng.integers(4, size=n) if rotate else np.zeros(n, dtype=np.int64)
    toned = rng.uniform(size=n) < 0.5
    tints = tint_colours(rng, n, TINT_SATURATION)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    boxes = np.empty((n, 4))
    for s, name in enumerate(sources):
        idx = np.flatnonzero(src == s)
        if not len(idx):
            continue
        photo = load_photo(name)
        h, w = photo.shape[:2]
        boxes[idx] = random_square_boxes(_rng(seed, set_name, name), len(idx), (0.0, 0.0, float(w), float(h)), side)
        thumbs = render_crops(photo, boxes[idx], flip[idx], size)
        if photo.ndim == 2:
            thumbs = tint_grey(thumbs, np.where(toned[idx, None], tints[idx], 1.0))
        else:
            toned[idx] = False
        images[idx] = thumbs
    for r in range(1, 4):
        images[rot == r] = np.rot90(images[rot == r], r, axes=(1, 2))
    return MiniArrays(images, np.full(n, -1, dtype=np.int64),
                      {"source": src, "box": boxes, "flip": flip, "rot90": rot, "toned": toned})


def _build_faces(size: int, seed: int, n: int) -> MiniArrays:
    faces = load_lfw_faces()
    rng = _rng(seed, "mini-faces")
    src = rng.integers(len(faces), size=n)
    boxes = random_square_boxes(rng, n, (0.0, 0.0, 25.0, 25.0), (0.8, 1.0))
    flip = rng.uniform(size=n) < 0.5
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        images[i] = as_rgb(render_crops(faces[src[i]], boxes[i:i + 1], flip[i:i + 1], size)[0])
    return MiniArrays(images, np.full(n, -1, dtype=np.int64), {"source": src, "box": boxes, "flip": flip})


def _build_digits(palette: str, size: int, seed: int, n: int) -> MiniArrays:
    glyphs, labels = load_digit_glyphs()
    images, meta = render_digits(seed, n, size, palette, glyphs, labels)
    return MiniArrays(images, np.full(n, -1, dtype=np.int64), meta)


_VERSIONS: dict[str, Callable[[], str]] = {}  # sets with their own cache-key version (register_mini_set)
_BUILDS: dict[str, Callable[[str, int, int, int], MiniArrays]] = {
    "mini-id": _build_id,
    "mini-outliers": lambda split, size, seed, n: _thumbnails("mini-outliers", OUTLIER_SOURCES, size, seed, n,
                                                              (0.25, 1.0), rotate=False),
    "mini-val-outliers": lambda split, size, seed, n: _thumbnails("mini-val-outliers", VAL_OUTLIER_SOURCES, size,
                                                                  seed, n, (0.25, 1.0), rotate=False),
    "mini-textures": lambda split, size, seed, n: _thumbnails("mini-textures", TEXTURE_SOURCES, size, seed, n,
                                                              (0.25, 0.75), rotate=True),
    "mini-faces": lambda split, size, seed, n: _build_faces(size, seed, n),
    "mini-svhn": lambda split, size, seed, n: _build_digits("svhn", size, seed, n),
    "mini-svhn-saturated": lambda split, size, seed, n: _build_digits("saturated", size, seed, n),
}


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


def register_mini_set(name: str, build: Callable[[str, int, int, int], MiniArrays], description: str, role: str,
                      splits: tuple[str, ...], url: str = _SKIMAGE_URL, classes: Optional[tuple[str, ...]] = None,
                      files: str = _BUNDLED, version: Optional[Callable[[], str]] = None,
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

    builder.__doc__ = f"{description} Options: size, seed, n, cache_dir (see oe_core.data.mini)."
    register_dataset(name, splits=splits, description=description, files=files, url=url, role=role,
                     num_classes=len(classes) if classes else None, needs_root=False,
                     default_split=splits[-1], tags=("mini",))(builder)


def _register(name: str, description: str, role: str, splits: tuple[str, ...], url: str = _SKIMAGE_URL,
              classes: Optional[tuple[str, ...]] = None) -> None:
    register_mini_set(name, _BUILDS[name], description, role, splits, url=url, classes=classes)


_register("mini-id", "mini benchmark in-distribution: 8 classes of colour photo thumbnails "
          "(train/val/test: independent random crops of each photo)", "id", _SPLITS, classes=ID_CLASSES)
_register("mini-outliers", "mini benchmark OE auxiliary set: thumbnails of 9 pictures used by no other set",
          "outlier", ("train",))
_register("mini-val-outliers", "mini benchmark validation OOD set (design choices only): thumbnails of 3 "
          "pictures held out of OE training and of every test set", "ood", ("val",))
_register("mini-textures", "mini benchmark OOD: brick/grass/gravel/text/page texture crops, half toned",
          "ood", ("test",))
_register("mini-faces", "mini benchmark OOD: LFW-subset face crops (grey)", "ood", ("test",))
_register("mini-svhn", "mini benchmark OOD: SVHN-like house numbers (near-grey, low contrast, blurred)", "ood",
          ("test",), url="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html")
_register("mini-svhn-saturated", "mini benchmark OOD: the mini-svhn scenes in saturated high-contrast colours",
          "ood", ("test",), url="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html")
