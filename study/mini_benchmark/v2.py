"""Mini benchmark version 2 (the demo's default): its sets, built from pictures that ship inside installed packages.

``mini-id`` (train/val/test, 8 classes, one per bundled photograph; the three splits are independent random crops
of each photograph), ``mini-outliers`` (the OE set), ``mini-val-outliers`` (the validation OOD set) and the test
OOD sets ``mini-textures``, ``mini-faces``, ``mini-svhn`` and ``mini-svhn-saturated``.  The noise OOD sets
(``gaussian``, ``rademacher``, ``blobs``) come from ``oe_core.data`` with its ``size=`` option.  How each set is
drawn and why: ``docs/mini_benchmark.md``.  Options and caching: :mod:`study.mini_benchmark.sets`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .bundled_images import load_digit_glyphs, load_lfw_faces, load_photo
from .cache import MiniArrays
from .crops import as_rgb, random_square_boxes, render_crops, tint_colours, tint_grey
from .digits import render_digits
from .sets import SKIMAGE_URL, Build, register_mini_set, seeded_rng

ID_CLASSES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower", "grace_hopper")
OUTLIER_SOURCES = ("hubble_deep_field", "immunohistochemistry", "retina", "gift", "colorwheel", "logo",
                   "camera", "coins", "moon")
VAL_OUTLIER_SOURCES = ("cell", "clock", "microaneurysms")  # held out of OE training: validation only
TEXTURE_SOURCES = ("brick", "grass", "gravel", "text", "page")

TINT_SATURATION = (0.15, 0.5)
ID_SIDE = (0.5, 1.0)  # mini-id crop side as a fraction of the photo's shorter side

_SPLITS = ("train", "val", "test")
_DIGITS_URL = "https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html"


def _build_id(split: str, size: int, seed: int, n: int) -> MiniArrays:
    k = len(ID_CLASSES)
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    parts, boxes, flips = [], [], []
    for c, name in enumerate(ID_CLASSES):
        photo = load_photo(name)
        rng = seeded_rng(seed, "mini-id", split, c)
        whole = (0.0, 0.0, float(photo.shape[1]), float(photo.shape[0]))      # every split crops the whole photo
        b = random_square_boxes(rng, counts[c], whole, ID_SIDE)
        f = rng.uniform(size=counts[c]) < 0.5
        parts.append(render_crops(as_rgb(photo), b, f, size))
        boxes.append(b)
        flips.append(f)
    targets = np.repeat(np.arange(k), counts)
    order = seeded_rng(seed, "mini-id", split, "order").permutation(n)
    return MiniArrays(np.concatenate(parts)[order], targets[order],
                      {"source": targets[order], "box": np.concatenate(boxes)[order],
                       "flip": np.concatenate(flips)[order]})


def _thumbnails(set_name: str, sources: tuple[str, ...], size: int, seed: int, n: int,
                side: tuple[float, float], rotate: bool) -> MiniArrays:
    """Crops of ``sources`` (drawn uniformly per image); grey sources toned with p=0.5."""
    rng = seeded_rng(seed, set_name)
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
        boxes[idx] = random_square_boxes(seeded_rng(seed, set_name, name), len(idx), (0.0, 0.0, float(w), float(h)),
                                         side)
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
    rng = seeded_rng(seed, "mini-faces")
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


BUILDS: dict[str, Build] = {
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


def _register(name: str, description: str, role: str, splits: tuple[str, ...], url: str = SKIMAGE_URL,
              classes: Optional[tuple[str, ...]] = None, default_n: Optional[dict[str, int]] = None) -> None:
    register_mini_set(name, BUILDS[name], description, role, splits, url=url, classes=classes, default_n=default_n)


_register("mini-id", "mini benchmark in-distribution: 8 classes of colour photo thumbnails "
          "(train/val/test: independent random crops of each photo)", "id", _SPLITS, classes=ID_CLASSES,
          default_n={"train": 5000, "val": 1000, "test": 1000})
_register("mini-outliers", "mini benchmark OE auxiliary set: thumbnails of 9 pictures used by no other set",
          "outlier", ("train",), default_n={"train": 5000})
_register("mini-val-outliers", "mini benchmark validation OOD set (design choices only): thumbnails of 3 "
          "pictures held out of OE training and of every test set", "ood", ("val",))
_register("mini-textures", "mini benchmark OOD: brick/grass/gravel/text/page texture crops, half toned",
          "ood", ("test",))
_register("mini-faces", "mini benchmark OOD: LFW-subset face crops (grey)", "ood", ("test",))
_register("mini-svhn", "mini benchmark OOD: SVHN-like house numbers (near-grey, low contrast, blurred)", "ood",
          ("test",), url=_DIGITS_URL)
_register("mini-svhn-saturated", "mini benchmark OOD: the mini-svhn scenes in saturated high-contrast colours",
          "ood", ("test",), url=_DIGITS_URL)
