"""A shipped photo set (mini benchmark v3, v4): its ``manifest.json``, its fixed split by photograph, its photographs.

A folder such as ``v3_photos/`` holds ``manifest.json``: ``classes`` (names, in class-index order) and ``photos``
(one dict each: ``name``, ``class``, and either ``file`` -- a thumbnail path relative to the folder, with its
``sha256`` -- or ``bundled``, a name of :data:`study.mini_benchmark.bundled_images.PHOTOS`; optionally
``split_group``, shared by photographs of the same subject that must land in the same split).
:class:`PhotoSet` reads it; ``label`` (``"mini benchmark v3"``) starts every error message.

Every photograph belongs to exactly one split, fixed for all seeds (:meth:`PhotoSet.splits`): per class, the
photographs are grouped (a ``split_group`` is one unit, any other photograph a unit of its own), ``HELD_OUT``
of the class's units are test units, as many are validation units, the rest train units, drawn by a fixed
permutation of the units' keys (the group name, or the photograph's name) in sorted order.
"""
from __future__ import annotations

import functools
import hashlib
import json
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np

from oe_core.errors import DataError

from .bundled_images import load_photo
from .crops import as_rgb

HELD_OUT = 0.2  # fraction of each class's photographs (units) in val, and again in test (at least one each)
SPLITS = ("train", "val", "test")


def _manifest_bytes(folder: Path, label: str) -> bytes:
    path = folder / "manifest.json"
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{label}: cannot read {str(path)!r} ({e}); the photographs ship with the "
                        f"repository (study/mini_benchmark/{folder.name}/): reinstall or restore that folder") from e


def load_manifest(folder: Path, label: str) -> dict:
    """The manifest of ``folder``: ``classes`` and ``photos``, checked for shape."""
    try:
        m = json.loads(_manifest_bytes(folder, label))
        classes = list(m["classes"])
        for p in m["photos"]:
            if p["class"] not in classes or not (("file" in p) ^ ("bundled" in p)):
                raise ValueError(f"bad entry {p.get('name')!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{label}: {str(folder / 'manifest.json')!r} is corrupt ({e})") from e
    return m


def manifest_digest(folder: Path, label: str) -> str:
    """First 12 hex digits of the manifest's SHA-256 (part of the cache key: new photos, new sets)."""
    return hashlib.sha256(_manifest_bytes(folder, label)).hexdigest()[:12]


def photo_splits(manifest: dict, label: str) -> dict[str, str]:
    """Photograph name -> its split (``train``, ``val`` or ``test``); the same for every seed.  Photographs of
    one ``split_group`` get one split (a group spanning two classes is an error)."""
    out = {}
    group_class: dict[str, str] = {}
    for p in manifest["photos"]:
        g = p.get("split_group")
        if g is not None and group_class.setdefault(g, p["class"]) != p["class"]:
            raise DataError(f"{label}: split_group {g!r} spans the classes {group_class[g]!r} and {p['class']!r}")
    for cls in manifest["classes"]:
        units: dict[str, list[str]] = {}
        for p in manifest["photos"]:
            if p["class"] == cls:
                units.setdefault(p.get("split_group", p["name"]), []).append(p["name"])
        keys = sorted(units)
        k = max(1, round(HELD_OUT * len(keys)))
        if len(keys) < 2 * k + 1:
            raise DataError(f"{label}: class {cls!r} has {len(keys)} photographs; needs at least "
                            f"{2 * k + 1} to hold whole photographs out for val and test")
        order = np.random.default_rng([3, zlib.crc32(cls.encode())]).permutation(len(keys))
        for rank, i in enumerate(order):
            for name in units[keys[i]]:
                out[name] = "test" if rank < k else "val" if rank < 2 * k else "train"
    return out


@functools.lru_cache(maxsize=64)
def _load(folder: Path, label: str, name: str) -> np.ndarray:
    entry = next(p for p in load_manifest(folder, label)["photos"] if p["name"] == name)
    if "bundled" in entry:
        return as_rgb(load_photo(entry["bundled"]))
    path = folder / entry["file"]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{label}: cannot read the photograph {str(path)!r} ({e})") from e
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise DataError(f"{label}: the photograph {str(path)!r} is corrupt (SHA-256 differs from "
                        f"manifest.json); restore it from the repository")
    from PIL import Image
    with Image.open(BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def load_photo_of(folder: Path, label: str, name: str) -> np.ndarray:
    """Photograph ``name`` of ``folder``'s manifest as uint8 ``(H, W, 3)``."""
    if not any(p["name"] == name for p in load_manifest(folder, label)["photos"]):
        raise DataError(f"{label}: no photograph {name!r} in the manifest")
    return _load(folder, label, name)


@dataclass(frozen=True)
class PhotoSet:
    """One shipped photo folder and the name its errors carry."""

    folder: Path
    label: str

    def manifest(self) -> dict:
        return load_manifest(self.folder, self.label)

    def digest(self) -> str:
        return manifest_digest(self.folder, self.label)

    def splits(self) -> dict[str, str]:
        return photo_splits(self.manifest(), self.label)

    def load(self, name: str) -> np.ndarray:
        return load_photo_of(self.folder, self.label, name)
