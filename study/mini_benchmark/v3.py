"""Mini benchmark version 3: ``mini3-id``, scene classes of many photographs, whole photographs held out.

``mini3-id`` (train/val/test; classes ``plants``, ``landscapes``, ``objects``) is cut from the photographs of
:mod:`study.mini_benchmark.v3_manifest` -- freely licensed photographs shipped as thumbnails
(``v3_photos/``) plus five photographs of installed packages.  Each photograph lies in exactly one split,
so every test image comes from a photograph never seen in training or validation.  How images are cut
(as ``mini-id`` of version 2, classes balanced): :mod:`study.mini_benchmark.photo_id`.

The OE set, the validation OOD set and the test OOD sets are version 2's (:mod:`study.mini_benchmark.v2`); none shares a
picture with ``mini3-id``.  Which sets form each version: :mod:`study.mini_benchmark.versions`.  The design and
the source survey: ``docs/mini_benchmark.md`` ("Version 3").
"""
from __future__ import annotations

from .cache import MiniArrays
from .photo_id import PhotoIdSet
from .sets import register_mini_set
from .v3_manifest import PHOTOS, SPLITS, manifest_digest

BUILDER_VERSION = 1
CLASSES = ("plants", "landscapes", "objects")
NAME = "mini3-id"
ID_SET = PhotoIdSet(NAME, PHOTOS, CLASSES)


def _version() -> str:
    return f"3.{BUILDER_VERSION}-{manifest_digest()}"


def split_photos(split: str) -> dict[str, list[str]]:
    """Class -> the sorted names of its photographs in ``split``."""
    return ID_SET.split_photos(split)


def build_id3(split: str, size: int, seed: int, n: int) -> MiniArrays:
    """``n`` images of ``mini3-id``/``split``; meta: ``photo`` (index into the manifest), ``box``, ``flip``."""
    return ID_SET.build(split, size, seed, n)


register_mini_set(NAME, build_id3, "mini benchmark v3 in-distribution: 3 scene classes (plants, landscapes, "
                  "objects) of 43 photographs; train/val/test hold out whole photographs", "id", SPLITS,
                  classes=CLASSES, version=_version, url="study/mini_benchmark/v3_photos/LICENSES.md",
                  files="built from photographs shipped in study/mini_benchmark/v3_photos and bundled with "
                        "scikit-image / scikit-learn (no files needed)",
                  default_n={"train": 5000, "val": 1000, "test": 1000})
