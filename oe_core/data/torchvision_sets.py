"""CIFAR-10, CIFAR-100 and SVHN through torchvision's own classes, which read, verify (md5) and download the
files under the data root (``cifar-10-batches-py/``, ``cifar-100-python/``, ``svhn/{train,test,extra}_32x32.mat``).
Items follow the suite's contract (:class:`~oe_core.data.arrays.UInt8ImageArray`); any failure inside torchvision
becomes one :class:`DataError` naming the dataset, the folder, the expected files and where to get them.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from scipy.io.matlab import MatReadError
from torchvision.datasets import CIFAR10, CIFAR100, SVHN

from ..errors import DataError
from .arrays import UInt8ImageArray
from .registry import data_error, register_dataset
from .sources import Source, torchvision_md5

# what torchvision (and the pickle / .mat readers under it) raise on missing, corrupt or undownloadable files
_LOAD_ERRORS = (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError, KeyError,
                TypeError, IndexError, AttributeError, MatReadError, DataError)

_PAPER_OOD = ("paper-ood",)


def _cifar_source(cls: type) -> Source:
    """The published python-pickle archive; torchvision pins its md5 (``tgz_md5``)."""
    return Source(cls.filename, cls.url, target=cls.base_folder, pin=torchvision_md5(f"{cls.__name__}.tgz_md5"),
                  archive_dir=cls.base_folder)


_SVHN_SOURCES = tuple(Source(f"{split}_32x32.mat", f"http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat",
                             target=f"svhn/{split}_32x32.mat", pin=torchvision_md5(f"SVHN.split_list.{split}.2"),
                             split=split) for split in ("train", "test", "extra"))


def _load(name: str, folder: Path, expected: list[str], download: bool, make: Callable):
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing and not download:
        raise data_error(name, folder, f"missing {', '.join(missing)}")
    try:
        return make()
    except _LOAD_ERRORS as e:
        problem = ("download failed" if missing
                   else "corrupt or incomplete files (checksum or format check failed)")
        raise data_error(name, folder, f"{problem}: {type(e).__name__}: {e}") from e


def _cifar_set(name: str, cls: type, num_classes: int, description: str, files: str, url: str) -> None:
    """Register ``name``: torchvision's ``cls`` (CIFAR10 or CIFAR100, fine labels) over its folder under the root."""
    def build(root: Path, split: str, transform: Optional[Callable], download: bool) -> UInt8ImageArray:
        def make() -> UInt8ImageArray:
            ds = cls(str(root), train=(split == "train"), download=download)
            return UInt8ImageArray(ds.data, np.asarray(ds.targets, dtype=np.int64), transform, classes=ds.classes)

        expected = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return _load(name, root / cls.base_folder, expected, download, make)

    build.__doc__ = f"{description} via ``torchvision.datasets.{cls.__name__}``."
    register_dataset(name, splits=("train", "test"), description=description, files=files, url=url, role="id",
                     num_classes=num_classes, can_download=True, tags=_PAPER_OOD, sources=(_cifar_source(cls),))(build)


_cifar_set("cifar10", CIFAR10, 10, "CIFAR-10 (50k train / 10k test, 10 classes)",
           "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)",
           "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
_cifar_set("cifar100", CIFAR100, 100, "CIFAR-100 (50k train / 10k test, 100 fine classes)",
           "cifar-100-python/ (train, test, meta)", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")


@register_dataset("svhn", splits=("train", "test", "extra"),
                  description="SVHN cropped digits (73,257 train / 26,032 test / 531,131 extra; digit 0 = label 0)",
                  files="svhn/{train,test,extra}_32x32.mat", url="http://ufldl.stanford.edu/housenumbers/",
                  role="id", num_classes=10, can_download=True, tags=_PAPER_OOD, sources=_SVHN_SOURCES)
def build_svhn(root: Path, split: str, transform: Optional[Callable], download: bool) -> UInt8ImageArray:
    """SVHN via ``torchvision.datasets.SVHN`` (which maps the .mat label 10 to digit 0); the reference's
    ``Resize(32)`` of SVHN test images is a no-op at 32x32."""
    folder = root / "svhn"
    filename = SVHN.split_list[split][1]

    def make() -> UInt8ImageArray:
        ds = SVHN(str(folder), split=split, download=download)
        # torchvision stores (N, 3, H, W); serve an (N, H, W, 3) view without copying.
        return UInt8ImageArray(np.transpose(ds.data, (0, 2, 3, 1)), ds.labels, transform,
                               classes=[str(d) for d in range(10)])

    return _load("svhn", folder, [filename], download, make)
