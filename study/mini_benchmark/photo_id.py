"""The in-distribution set of a shipped photo set (``mini3-id``, ``mini4-id``): crops of whole photographs, each
photograph in exactly one of train / val / test (:mod:`study.mini_benchmark.photo_manifest`).

Images are square crops of side U(0.5, 1.0) x the photograph's shorter side (v2's ``ID_SIDE``), anywhere in
it, mirrored with p=0.5, antialiased to ``size`` pixels.  Classes are balanced (``n // k`` images each, the
first ``n % k`` classes one more); within a class each image's photograph is drawn uniformly from the split's
photographs of that class.  Per-image metadata: ``photo`` (index into the manifest), ``box``, ``flip``.

A set's classes are the manifest's, or coarser ones: ``class_of`` maps each manifest class to one of
``classes`` (the split is always the manifest's, per manifest class, so two class designs of one manifest hold
out the same photographs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from oe_core.errors import DataError

from .cache import MiniArrays
from .crops import random_square_boxes, render_crops
from .photo_manifest import PhotoSet
from .sets import seeded_rng
from .v2 import ID_SIDE


@dataclass(frozen=True)
class PhotoIdSet:
    """Registered set ``name`` cut from ``photos`` with ``classes`` (class-index order)."""

    name: str
    photos: PhotoSet
    classes: tuple[str, ...]
    class_of: Optional[tuple[tuple[str, str], ...]] = None   # (manifest class, class) pairs; None: the same

    def _mapping(self, manifest: dict) -> dict[str, str]:
        mapping = dict(self.class_of) if self.class_of is not None else {c: c for c in manifest["classes"]}
        if self.class_of is None and tuple(manifest["classes"]) != self.classes:
            raise DataError(f"{self.photos.label}: manifest classes {manifest['classes']} differ from "
                            f"{list(self.classes)}")
        if set(mapping) != set(manifest["classes"]) or set(mapping.values()) != set(self.classes):
            raise DataError(f"{self.photos.label}: manifest classes {manifest['classes']} do not map onto "
                            f"{list(self.classes)}")
        return mapping

    def split_photos(self, split: str) -> dict[str, list[str]]:
        """Class -> the sorted names of its photographs in ``split``."""
        m = self.photos.manifest()
        mapping = self._mapping(m)
        where = self.photos.splits()
        return {c: sorted(p["name"] for p in m["photos"] if mapping[p["class"]] == c and where[p["name"]] == split)
                for c in self.classes}

    def build(self, split: str, size: int, seed: int, n: int) -> MiniArrays:
        """``n`` images of ``split``; meta: ``photo`` (index into the manifest), ``box``, ``flip``."""
        names = [p["name"] for p in self.photos.manifest()["photos"]]
        k = len(self.classes)
        counts = np.full(k, n // k) + (np.arange(k) < n % k)
        images = np.empty((n, size, size, 3), dtype=np.uint8)
        photo, boxes, flips = np.empty(n, dtype=np.int64), np.empty((n, 4)), np.empty(n, dtype=bool)
        start = 0
        for c, photos in enumerate(self.split_photos(split).values()):
            rng = seeded_rng(seed, self.name, split, c)
            pick = rng.integers(len(photos), size=counts[c])
            flips[start:start + counts[c]] = rng.uniform(size=counts[c]) < 0.5
            for j, name in enumerate(photos):
                idx = start + np.flatnonzero(pick == j)
                if not len(idx):
                    continue
                img = self.photos.load(name)
                whole = (0.0, 0.0, float(img.shape[1]), float(img.shape[0]))
                boxes[idx] = random_square_boxes(seeded_rng(seed, self.name, split, name), len(idx), whole, ID_SIDE)
                images[idx] = render_crops(img, boxes[idx], flips[idx], size)
                photo[idx] = names.index(name)
            start += counts[c]
        targets = np.repeat(np.arange(k), counts)
        order = seeded_rng(seed, self.name, split, "order").permutation(n)
        return MiniArrays(images[order], targets[order],
                          {"photo": photo[order], "box": boxes[order], "flip": flips[order]})
