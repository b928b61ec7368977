"""Mini benchmark version 4: ``mini4-id``, 323 freely licensed photographs in 8 classes, whole photographs held out.

``mini4-id`` (train/val/test) is cut from the photographs of ``v4_photos/manifest.json``: 284 thumbnails shipped
in ``v4_photos/`` (GCompris, Tux Paint, LXQt, libjxl test data, puzzle-jigsaw; sources, authors and licences in
``v4_photos/LICENSES.md``; made by ``python -m study.mini_benchmark.make_v4_photos``) and 39 of version 3's
(its thumbnails and package pictures, not copied).  Each photograph lies in exactly one split, the same for
every seed; photographs of one monument share a ``split_group`` and so a split
(:mod:`study.mini_benchmark.photo_manifest`).  Images are cut as ``mini3-id``'s (:mod:`study.mini_benchmark.photo_id`).

Two class designs over the same split: :data:`CLASSES_8` (the manifest's classes) and :data:`CLASSES_5`
(:data:`MERGE_5`: ``tools`` + ``objects``, ``plants`` + ``landscapes`` = ``nature``, ``energy`` into ``buildings``).
:data:`DESIGN` is the one registered; it was chosen on validation data (``docs/mini_benchmark.md``, "Version 4").

The OE set, the validation OOD set and the test OOD sets are version 2's (:mod:`study.mini_benchmark.v2`).
"""
from __future__ import annotations

from pathlib import Path

from .cache import MiniArrays
from .photo_id import PhotoIdSet
from .photo_manifest import SPLITS, PhotoSet
from .sets import register_mini_set

BUILDER_VERSION = 1
NAME = "mini4-id"
PHOTO_DIR = Path(__file__).resolve().parent / "v4_photos"
PHOTOS = PhotoSet(PHOTO_DIR, "mini benchmark v4")

CLASSES_8 = ("animals", "buildings", "energy", "landscapes", "objects", "plants", "tools", "underwater")
MERGE_5 = {"animals": "animals", "buildings": "buildings", "energy": "buildings", "landscapes": "nature",
           "plants": "nature", "objects": "objects", "tools": "objects", "underwater": "underwater"}
CLASSES_5 = ("animals", "buildings", "nature", "objects", "underwater")
DESIGNS: dict[str, PhotoIdSet] = {
    "8": PhotoIdSet(NAME, PHOTOS, CLASSES_8),
    "5": PhotoIdSet(NAME, PHOTOS, CLASSES_5, class_of=tuple(MERGE_5.items())),
}
DESIGN = "8"
ID_SET = DESIGNS[DESIGN]
CLASSES = ID_SET.classes


def manifest_digest() -> str:
    return PHOTOS.digest()


def _version() -> str:
    return f"4.{BUILDER_VERSION}-{len(CLASSES)}c-{manifest_digest()}"


def split_photos(split: str) -> dict[str, list[str]]:
    """Class -> the sorted names of its photographs in ``split``."""
    return ID_SET.split_photos(split)


def build_id4(split: str, size: int, seed: int, n: int) -> MiniArrays:
    """``n`` images of ``mini4-id``/``split``; meta: ``photo`` (index into the manifest), ``box``, ``flip``."""
    return ID_SET.build(split, size, seed, n)


register_mini_set(NAME, build_id4, f"mini benchmark v4 in-distribution: {len(CLASSES)} classes "
                  f"({', '.join(CLASSES)}) of 323 photographs; train/val/test hold out whole photographs", "id",
                  SPLITS, classes=CLASSES, version=_version, url="study/mini_benchmark/v4_photos/LICENSES.md",
                  files="built from photographs shipped in study/mini_benchmark/v4_photos and v3_photos and "
                        "bundled with scikit-image / scikit-learn (no files needed)",
                  default_n={"train": 5000, "val": 1000, "test": 1000})
