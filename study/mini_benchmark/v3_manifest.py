"""The photographs of mini benchmark v3 and their fixed split into train / val / test photos.

The set is described by ``v3_photos/manifest.json`` beside this module: each photograph's name, class, and
either the shipped thumbnail (``file``, with its SHA-256; sources, authors and licences in
``v3_photos/LICENSES.md``) or the installed package's picture it is (``bundled``: a name of
:data:`study.mini_benchmark.bundled_images.PHOTOS`).  ``python -m study.mini_benchmark.make_v3_photos`` remakes the
shipped part.

Every photograph belongs to exactly one split, fixed for all seeds (:func:`photo_splits`): per class,
:data:`HELD_OUT` of its photographs are test photos, as many are validation photos, the rest train photos,
drawn by a fixed permutation of the class's names in sorted order.
"""
from __future__ import annotations

import functools
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np

from oe_core.errors import DataError

from .bundled_images import load_photo
from .crops import as_rgb

PHOTO_DIR = Path(__file__).resolve().parent / "v3_photos"
HELD_OUT = 0.2  # fraction of each class's photographs in val, and again in test (at least one each)
SPLITS = ("train", "val", "test")


def _manifest_bytes(folder: Path) -> bytes:
    path = folder / "manifest.json"
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"mini benchmark v3: cannot read {str(path)!r} ({e}); the photographs ship with the "
                        f"repository (study/mini_benchmark/v3_photos/): reinstall or restore that folder") from e


def load_manifest(folder: Path = PHOTO_DIR) -> dict:
    """The manifest: ``classes`` (names, in class-index order) and ``photos`` (one dict each)."""
    try:
        m = json.loads(_manifest_bytes(folder))
        classes = list(m["classes"])
        for p in m["photos"]:
            if p["class"] not in classes or not (("file" in p) ^ ("bundled" in p)):
                raise ValueError(f"bad entry {p.get('name')!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"mini benchmark v3: {str(folder / 'manifest.json')!r} is corrupt ({e})") from e
    return m


def manifest_digest(folder: Path = PHOTO_DIR) -> str:
    """First 12 hex digits of the manifest's SHA-256 (part of the cache key: new photos, new sets)."""
    return hashlib.sha256(_manifest_bytes(folder)).hexdigest()[:12]


def photo_splits(manifest: dict) -> dict[str, str]:
    """Photograph name -> its split (``train``, ``val`` or ``test``); the same for every seed."""
    out = {}
    for cls in manifest["classes"]:
        names = sorted(p["name"] for p in manifest["photos"] if p["class"] == cls)
        k = max(1, round(HELD_OUT * len(names)))
        if len(names) < 2 * k + 1:
            raise DataError(f"mini benchmark v3: class {cls!r} has {len(names)} photographs; needs at least "
                            f"{2 * k + 1} to hold whole photographs out for val and test")
        order = np.random.default_rng([3, zlib.crc32(cls.encode())]).permutation(len(names))
        for rank, i in enumerate(order):
            out[names[i]] = "test" if rank < k else "val" if rank < 2 * k else "train"
    return out


@functools.lru_cache(maxsize=64)
def _load(folder: Path, name: str) -> np.ndarray:
    entry = next(p for p in load_manifest(folder)["photos"] if p["name"] == name)
    if "bundled" in entry:
        return as_rgb(load_photo(entry["bundled"]))
    path = folder / entry["file"]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"mini benchmark v3: cannot read the photograph {str(path)!r} ({e})") from e
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise DataError(f"mini benchmark v3: the photograph {str(path)!r} is corrupt (SHA-256 differs from "
                        f"manifest.json); restore it from the repository")
    from io import BytesIO

    from PIL import Image
    with Image.open(BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def load_v3_photo(name: str, folder: Path = PHOTO_DIR) -> np.ndarray:
    """Photograph ``name`` of the manifest as uint8 ``(H, W, 3)``."""
    if not any(p["name"] == name for p in load_manifest(folder)["photos"]):
        raise DataError(f"mini benchmark v3: no photograph {name!r} in the manifest")
    return _load(folder, name)
