"""The photographs of mini benchmark v3 and their fixed split into train / val / test photos.

The set is described by ``v3_photos/manifest.json`` beside this module: each photograph's name, class, and
either the shipped thumbnail (``file``, with its SHA-256; sources, authors and licences in
``v3_photos/LICENSES.md``) or the installed package's picture it is (``bundled``: a name of
:data:`study.mini_benchmark.bundled_images.PHOTOS`).  ``python -m study.mini_benchmark.make_v3_photos`` remakes the
shipped part.

Every photograph belongs to exactly one split, fixed for all seeds (:func:`photo_splits`): per class,
:data:`HELD_OUT` of its photographs are test photographs, as many are validation photographs, the rest train
photographs, drawn by a fixed permutation of the class's names in sorted order.  The reading, checking and
splitting are :mod:`study.mini_benchmark.photo_manifest`'s, shared with version 4.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import photo_manifest as pm
from .photo_manifest import HELD_OUT, SPLITS, PhotoSet

PHOTO_DIR = Path(__file__).resolve().parent / "v3_photos"
LABEL = "mini benchmark v3"
PHOTOS = PhotoSet(PHOTO_DIR, LABEL)

__all__ = ["HELD_OUT", "LABEL", "PHOTOS", "PHOTO_DIR", "SPLITS", "load_manifest", "load_v3_photo",
           "manifest_digest", "photo_splits"]


def load_manifest(folder: Path = PHOTO_DIR) -> dict:
    """The manifest: ``classes`` (names, in class-index order) and ``photos`` (one dict each)."""
    return pm.load_manifest(folder, LABEL)


def manifest_digest(folder: Path = PHOTO_DIR) -> str:
    """First 12 hex digits of the manifest's SHA-256 (part of the cache key: new photos, new sets)."""
    return pm.manifest_digest(folder, LABEL)


def photo_splits(manifest: dict) -> dict[str, str]:
    """Photograph name -> its split (``train``, ``val`` or ``test``); the same for every seed."""
    return pm.photo_splits(manifest, LABEL)


def load_v3_photo(name: str, folder: Path = PHOTO_DIR) -> np.ndarray:
    """Photograph ``name`` of the manifest as uint8 ``(H, W, 3)``."""
    return pm.load_photo_of(folder, LABEL, name)
