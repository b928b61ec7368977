"""Where a dataset's files come from (the registry's ``sources``, read by :mod:`oe_core.data.fetch`).

:class:`Source`: one published file and the md5 its source publishes, read when needed from where it is published
(``pin=torchvision_md5(...)``), so the suite keeps no second copy.  :class:`EvalSubset`: an index list shipped in
``oe_core/data/subsets/`` with its sha256, the images of a larger published set that the evaluation uses.
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import DataError

SUBSETS_DIR = Path(__file__).resolve().with_name("subsets")
_ARCHIVES = (".tar.gz", ".tgz", ".tar")


def torchvision_md5(path: str) -> Callable[[], str]:
    """A pin read from torchvision when needed: ``"CIFAR10.tgz_md5"``, ``"SVHN.split_list.test.2"``,
    ``"Places365._IMAGES_META.val,True.1"`` (attribute, then keys/indices; ``a,b`` is a tuple key)."""

    def read() -> str:
        datasets = importlib.import_module("torchvision.datasets")
        cls, attr, *keys = path.split(".")
        value = getattr(getattr(datasets, cls), attr)
        for key in keys:
            if isinstance(value, (list, tuple)):
                value = value[int(key)]
            elif "," in key:
                value = value[tuple(True if k == "True" else False if k == "False" else k for k in key.split(","))]
            else:
                value = value[key]
        return str(value)

    read.__qualname__ = f"torchvision.datasets.{path}"
    return read


@dataclass(frozen=True)
class EvalSubset:
    """A subset of a published set that the evaluation uses: a file of image file names, one per line."""

    name: str
    file: str            # under oe_core/data/subsets/
    sha256: str          # of that file
    count: int
    description: str

    @property
    def path(self) -> Path:
        return SUBSETS_DIR / self.file

    def names(self) -> list[str]:
        """The file names, after checking the list against its pinned sha256 (:class:`DataError` if it differs)."""
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise DataError(f"evaluation subset {self.name!r}: cannot read {str(self.path)!r} ({e.strerror})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise DataError(f"evaluation subset {self.name!r}: {str(self.path)!r} has sha256 {digest}, expected "
                            f"{self.sha256} (the list shipped with the suite was changed)")
        names = data.decode().split()
        if len(names) != self.count or len(set(names)) != self.count:
            raise DataError(f"evaluation subset {self.name!r}: expected {self.count} distinct names, "
                            f"got {len(set(names))}")
        return names


@dataclass(frozen=True)
class Source:
    """One published file of a dataset.  ``target``: the path under the data root that the loader reads, the file
    itself or the folder an archive's ``archive_dir`` becomes (``None``: the archive's single top-level folder, or
    everything in it); ``members``: take only these files of the archive (an evaluation subset)."""

    filename: str                        # the published file name (also its name on a mirror)
    url: str
    target: str
    pin: Optional[Callable[[], str]] = None   # the md5 the source publishes (read when needed)
    archive_dir: Optional[str] = None
    split: str = ""                      # the split this file holds ("": every split)
    members: Optional[EvalSubset] = None

    @property
    def is_archive(self) -> bool:
        return self.filename.endswith(_ARCHIVES)

    def pinned_md5(self) -> str:
        return self.pin() if self.pin is not None else ""

    def pinned_by(self) -> str:
        return self.pin.__qualname__ if self.pin is not None else ""

    def url_from(self, mirror: str = "") -> str:
        """The URL to fetch from: ``mirror/filename`` when a mirror is given (a URL or a local folder)."""
        return mirror.rstrip("/") + "/" + self.filename if mirror else self.url
