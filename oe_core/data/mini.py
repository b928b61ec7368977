"""The offline mini benchmark: CIFAR-like in-distribution, OE outliers and OOD test sets
made only from images that ship inside installed packages (no download, seconds to build).

Registered sets (``get_dataset("mini-...")``; none needs ``--data-root``):

* ``mini-id`` (train/val/test, 8 classes) -- CIFAR-like colour thumbnails, one
  class per photograph: astronaut, chelsea (cat), coffee, rocket, motorcycle
  (scikit-image), china, flower (scikit-learn), grace_hopper (matplotlib).
  Square crops of side U(0.5, 1.0) x the photo's shorter side, anywhere in the
  photo, mirrored with probability 0.5, downsampled with antialiasing.  The
  three splits are independent draws (own random streams) from the same crop
  distribution: test images are new views of the class's scene, drawn as the
  training images are, as CIFAR's test images come from the training
  distribution.  Classes are balanced.  ``val`` is for choosing the design
  and training lengths (:mod:`analysis.mini_select`), never for reporting.
  (Version 1 took train crops from the left half of each photo and test crops
  from the right half: a shifted test distribution on which a small CNN
  reached ~80% accuracy and was *less* confident than on outliers, so MSP
  could not separate test images from OOD sets and OE lowered its AUROC.)
* ``mini-outliers`` (train; the OE auxiliary set) -- thumbnails from pictures
  used by no other set: hubble_deep_field, immunohistochemistry, retina,
  colorwheel, logo, camera, coins, moon (scikit-image) and a gift-box graphic
  (matplotlib).  Source drawn uniformly per image, crop side U(0.25, 1.0) x
  the shorter side, mirrored with p=0.5; thumbnails of grey sources are toned
  with a random tint (HSV saturation U(0.15, 0.5)) with p=0.5, otherwise kept
  grey.
* ``mini-val-outliers`` (val; validation OOD set, never trained on, never in
  the reported evaluation) -- the same kind of thumbnails from three held-out
  pictures: cell, clock, microaneurysms (scikit-image).  With ``mini-id`` val
  it scores candidate designs (:mod:`analysis.mini_select`) so that no choice
  looks at the test OOD sets.
* ``mini-textures`` -- brick, grass, gravel, text, page (scikit-image, all
  grey): crop side U(0.25, 0.75), a random multiple of 90 degrees of
  rotation, mirrored with p=0.5; half are toned like the outliers' grey
  sources (the DTD textures of the paper are in colour), half stay grey.
* ``mini-faces`` -- the 100 faces of scikit-image's LFW subset (25x25, grey):
  crop side U(0.8, 1.0) x 25 px, mirrored with p=0.5, resized to the image size.
* ``mini-svhn`` -- house-number crops after SVHN's statistics, from
  scikit-learn's 8x8 digits (see :mod:`oe_core.data.mini_digits`): 1-3 digits,
  near-grey paint (tints of HSV saturation <= 0.15 plus SVHN's slight blue
  cast, channel means 0.4377/0.4438/0.4728 minus their average), low contrast
  (digit/background luma difference U(0.15, 0.35)), background luma
  U(0.12, 0.78), a smooth illumination gradient, Gaussian blur of sigma
  U(0.4, 1.0) px at 32 px, sensor noise sigma <= 2/255.
* ``mini-svhn-saturated`` -- the same scenes (same seed: same digits, layout,
  blur and noise) in saturated random colours (saturation >= 0.7, luma
  difference >= 0.3).  With ``mini-svhn`` it isolates what drives the
  likelihood's failure on SVHN: a density model tends to give the low-contrast
  grey digits *lower* bits/dim than the in-distribution thumbnails and the
  saturated ones higher (the complexity argument of Serra et al., 2020).

Measured at 32 px, seed 0, default sizes: ``mini-svhn`` channel means
0.43/0.43/0.46 and std 0.19 (SVHN: 0.44/0.44/0.47, 0.20), mean HSV saturation
0.12 (``mini-id`` 0.51, saturated variant 0.80), median luma spread (95th - 5th
percentile) 0.24 (``mini-id`` 0.63, saturated 0.36), PNG size 4.2 bits/dim
(``mini-id`` 5.7, saturated 4.6).  A small PixelCNN++ (1 resnet block per
stage, 32 filters, 16 px, 4 CPU-minutes on version 1 of ``mini-id``) scored AUROC(bpd) 0.25
on ``mini-svhn`` and 1.00 on ``mini-svhn-saturated``.

The noise OOD sets (``gaussian``, ``rademacher``, ``blobs``) come from the main
registry with its ``size=`` option.  All images are uint8 (256 levels).

Options of every mini set: ``size`` (side in pixels, default 32), ``seed``
(default 0), ``n`` (images in the split; defaults in :data:`DEFAULT_N`) and
``cache_dir`` (see :mod:`oe_core.data.mini_cache`).  A set is a pure function
of (set, split, size, seed, n, :data:`BUILDER_VERSION`) and is cached under
that key.  ``root`` and ``download`` are accepted and unused.

Differences from the paper's sets (deliberate: the benchmark must run offline
on a CPU): in-distribution classes are photographs rather than object
categories (the installed packages ship too few photos for several per
class), so a test image is a new crop of a scene seen in training, not a new
photograph; the OE set has 9 source pictures instead of 80 Million Tiny
Images; faces and textures are grey-derived as the bundled sources are; the
SVHN stand-in is rendered, not photographed.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError
from .arrays import UInt8ImageArray
from .mini_cache import MiniArrays, cached_build, default_cache_dir
from .mini_crops import Box, as_rgb, random_square_boxes, render_crops, tint_colours, tint_grey
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


def crop_region(height: int, width: int) -> Box:
    """Where ``mini-id`` crops of every split come from: the whole image, as a box ``(x0, y0, x1, y1)``."""
    return (0.0, 0.0, float(width), float(height))


def _build_id(split: str, size: int, seed: int, n: int) -> MiniArrays:
    k = len(ID_CLASSES)
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    parts, boxes, flips = [], [], []
    for c, name in enumerate(ID_CLASSES):
        photo = load_photo(name)
        rng = _rng(seed, "mini-id", split, c)
        b = random_square_boxes(rng, counts[c], crop_region(*photo.shape[:2]), ID_SIDE)
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
           "version": BUILDER_VERSION}
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return cached_build(key, lambda: _BUILDS[name](split, int(size), int(seed), int(n)), folder)


def _register(name: str, description: str, role: str, splits: tuple[str, ...], url: str = _SKIMAGE_URL,
              classes: Optional[tuple[str, ...]] = None) -> None:
    def build(root: Optional[Path], split: str, transform: Optional[Callable], download: bool, size: int = 32,
              seed: int = 0, n: Optional[int] = None, cache_dir: str | Path | None = None) -> UInt8ImageArray:
        a = build_mini(name, split, size=size, seed=seed, n=n, cache_dir=cache_dir)
        return UInt8ImageArray(a.images, a.targets, transform, classes=classes)

    build.__doc__ = f"{description} Options: size, seed, n, cache_dir (see oe_core.data.mini)."
    register_dataset(name, splits=splits, description=description, files=_BUNDLED, url=url, role=role,
                     num_classes=len(classes) if classes else None, needs_root=False,
                     default_split=splits[-1], tags=("mini",))(build)


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
