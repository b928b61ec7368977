"""Mini benchmark version 3: ``mini3-id``, scene classes of many photographs, whole photographs held out.

``mini3-id`` (train/val/test; classes ``plants``, ``landscapes``, ``objects``) is cut from the photographs of
:mod:`study.mini_benchmark.v3_manifest` -- freely licensed photographs shipped as thumbnails
(``v3_photos/``) plus five photographs of installed packages.  Each photograph lies in exactly one split,
so every test image comes from a photograph never seen in training or validation.  Images are square crops of
side U(0.5, 1.0) x the photograph's shorter side, anywhere in it, mirrored with p=0.5, antialiased to
``size`` pixels (as ``mini-id`` of version 2).  Classes are balanced (``n // 3`` images each); within a class
each image's photograph is drawn uniformly from the split's photographs of that class.

The OE set, the validation OOD set and the test OOD sets are version 2's (:mod:`study.mini_benchmark.v2`); none shares a
picture with ``mini3-id``.  Which sets form each version: :mod:`study.mini_benchmark.versions`.  The design and
the source survey: ``docs/mini_benchmark.md`` ("Version 3").
"""
from __future__ import annotations

import numpy as np

from oe_core.errors import DataError

from .cache import MiniArrays
from .crops import random_square_boxes, render_crops
from .sets import register_mini_set, seeded_rng
from .v2 import ID_SIDE
from .v3_manifest import SPLITS, load_manifest, load_v3_photo, manifest_digest, photo_splits

BUILDER_VERSION = 1
CLASSES = ("plants", "landscapes", "objects")
NAME = "mini3-id"


def _version() -> str:
    return f"3.{BUILDER_VERSION}-{manifest_digest()}"


def split_photos(split: str) -> dict[str, list[str]]:
    """Class -> the sorted names of its photographs in ``split``."""
    m = load_manifest()
    if tuple(m["classes"]) != CLASSES:
        raise DataError(f"mini benchmark v3: manifest classes {m['classes']} differ from {list(CLASSES)}")
    where = photo_splits(m)
    return {c: sorted(p["name"] for p in m["photos"] if p["class"] == c and where[p["name"]] == split)
            for c in CLASSES}


def build_id3(split: str, size: int, seed: int, n: int) -> MiniArrays:
    """``n`` images of ``mini3-id``/``split``; meta: ``photo`` (index into the manifest), ``box``, ``flip``."""
    names = [p["name"] for p in load_manifest()["photos"]]
    k = len(CLASSES)
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    photo, boxes, flips = np.empty(n, dtype=np.int64), np.empty((n, 4)), np.empty(n, dtype=bool)
    start = 0
    for c, photos in enumerate(split_photos(split).values()):
        rng = seeded_rng(seed, NAME, split, c)
        pick = rng.integers(len(photos), size=counts[c])
        flips[start:start + counts[c]] = rng.uniform(size=counts[c]) < 0.5
        for j, name in enumerate(photos):
            idx = start + np.flatnonzero(pick == j)
            if not len(idx):
                continue
            img = load_v3_photo(name)
            whole = (0.0, 0.0, float(img.shape[1]), float(img.shape[0]))
            boxes[idx] = random_square_boxes(seeded_rng(seed, NAME, split, name), len(idx), whole, ID_SIDE)
            images[idx] = render_crops(img, boxes[idx], flips[idx], size)
            photo[idx] = names.index(name)
        start += counts[c]
    targets = np.repeat(np.arange(k), counts)
    order = seeded_rng(seed, NAME, split, "order").permutation(n)
    return MiniArrays(images[order], targets[order],
                      {"photo": photo[order], "box": boxes[order], "flip": flips[order]})


register_mini_set(NAME, build_id3, "mini benchmark v3 in-distribution: 3 scene classes (plants, landscapes, "
                  "objects) of 43 photographs; train/val/test hold out whole photographs", "id", SPLITS,
                  classes=CLASSES, version=_version, url="study/mini_benchmark/v3_photos/LICENSES.md",
                  files="built from photographs shipped in study/mini_benchmark/v3_photos and bundled with "
                        "scikit-image / scikit-learn (no files needed)",
                  default_n={"train": 5000, "val": 1000, "test": 1000})
