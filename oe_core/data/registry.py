"""The dataset registry: one entry per dataset name, with where its files go.

Every dataset :func:`get_dataset` returns yields ``(image, target)``: without a ``transform`` the image is a
``torch.uint8`` tensor ``(3, H, W)`` (0..255), with one the transform receives an RGB ``PIL.Image`` (as torchvision
datasets do); ``target`` is the class index for labelled in-distribution sets and ``-1`` for OOD/outlier sets.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from torch.utils.data import Subset

from ..errors import ConfigError, DataError, OEError
from ..name_registry import Registry
from .plugins import load_plugins, where_plugins_come_from
from .sources import Source


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    builder: Callable  # builder(root: Path|None, split: str, transform, download: bool, **kwargs) -> Dataset
    splits: tuple[str, ...]
    description: str
    files: str = ""          # what must exist under --data-root ("" for generated sets)
    url: str = ""            # where to get the files
    role: str = "ood"        # "id" (has labels), "ood" (test OOD set), "outlier" (OE auxiliary), "noise"
    num_classes: Optional[int] = None
    normalize: bool = True   # False: the reference feeds these raw (scaled to [-1, 1]), not mean/std-normalised
    needs_root: bool = True
    can_download: bool = False
    default_split: str = "test"
    tags: tuple[str, ...] = field(default_factory=tuple)
    sources: tuple[Source, ...] = ()   # the published files `python -m oe_core.data fetch` downloads
    withdrawn: str = ""      # why the set cannot be fetched any more, and what to use instead


class DatasetRegistry(Registry[DatasetEntry]):
    """The registry of datasets: a name it does not hold, and every listing, first imports the dataset plugins
    (:mod:`oe_core.data.plugins`)."""

    def get(self, name: str) -> DatasetEntry:
        if name not in self:   # (imports the plugins when the name is not registered yet)
            raise OEError(f"unknown dataset {name!r}; known: {', '.join(self.names(plugins=False))}; "
                          f"{where_plugins_come_from()}")
        return super().get(name)

    def names(self, pattern: str = "*", plugins: bool = True) -> list[str]:
        """The names matching ``pattern``; ``plugins=False``: only those registered so far (no plugin imported)."""
        if plugins:
            load_plugins()
        return super().names(pattern)

    def __contains__(self, name: object) -> bool:
        if not super().__contains__(name):
            load_plugins()
        return super().__contains__(name)


DATASETS = DatasetRegistry("dataset")


def register_dataset(name: str, *, splits, description, **meta) -> Callable:
    """Decorator: ``@register_dataset("cifar10", splits=("train", "test"), ...)`` on a builder."""
    def wrap(builder: Callable) -> Callable:
        DATASETS.add(name, DatasetEntry(name=name, builder=builder, splits=tuple(splits),
                                        description=description, **meta))
        return builder
    return wrap


def data_error(name: str, path: str | Path, problem: str) -> DataError:
    """The one clear error for missing/corrupt data of dataset ``name``: what is wrong, where it looked, what it
    expects under the data root, where to get it and whether ``download=True`` / ``--download`` can fetch it."""
    entry = DATASETS.get(name)
    how = ("pass download=True / --download to fetch it" if entry.can_download
           else f"fetch it with `python -m oe_core.data fetch {name} --data-root DIR`" if entry.sources
           else "it cannot be downloaded automatically")
    return DataError(f"dataset {name!r}: {problem} [looked in {str(path)!r}; expected {entry.files} "
                     f"under the data root; get it from {entry.url}; {how}]")


def _params(name: str) -> Optional[dict]:
    """The builder's parameters (``None``: it takes any keyword)."""
    params = inspect.signature(DATASETS.get(name).builder).parameters
    return None if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) else params


def _check_options(entry: DatasetEntry, kwargs: dict) -> None:
    params = _params(entry.name)
    if params is None:
        return
    fixed = {"root", "split", "transform", "download"}
    unknown = sorted(k for k in kwargs if k not in params or k in fixed)
    if unknown:
        allowed = ", ".join(k for k in params if k not in fixed) or "none"
        raise OEError(f"dataset {entry.name!r} does not take option(s) {', '.join(unknown)}; options: {allowed}")


def dataset_info(name: str) -> DatasetEntry:
    return DATASETS.get(name)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def get_dataset(name: str, split: Optional[str] = None, root: str | Path | None = None,
                transform: Optional[Callable] = None, download: bool = False, **kwargs):
    """Build a registered dataset.  :class:`DataError` (the path looked in, the file expected, where to get it) for
    missing or corrupt data, :class:`OEError` for an unknown split or an option the dataset does not take.  With
    ``download=True`` a downloadable dataset's root is created if needed."""
    entry = DATASETS.get(name)
    split = split or entry.default_split
    if split not in entry.splits:
        raise OEError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(entry.splits)}")
    _check_options(entry, kwargs)
    if entry.needs_root:
        if root is None:
            raise DataError(f"dataset {name!r} needs --data-root (expected {entry.files} under it; get it from {entry.url})")
        root = Path(root).expanduser()
        if download and entry.can_download:
            root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise DataError(f"dataset {name!r}: data root {str(root)!r} does not exist "
                            f"(expected {entry.files} under it; get it from {entry.url})")
    elif root is not None:
        root = Path(root).expanduser()
    return entry.builder(root=root, split=split, transform=transform, download=download, **kwargs)


def takes_size(name: str) -> bool:
    """Whether dataset ``name`` is generated at a chosen image side (its builder takes ``size=``)."""
    params = _params(name)
    return params is None or "size" in params


def open_dataset(name: str, split: Optional[str] = None, *, root: str | Path | None = None, download: bool = False,
                 size: int = 0, options: Optional[dict] = None, limit: int = 0):
    """:func:`get_dataset` as every tool calls it: an empty ``root`` means none; ``size`` is ``--image-size`` (0 keeps
    the dataset's own), passed as ``size=`` to generated sets; ``options`` are further builder options (the
    ``KEY=VALUE`` parts of an evaluation's dataset spec); ``limit > 0`` keeps the first ``limit`` images."""
    kwargs = dict(options or {})
    if size:
        if not takes_size(name):
            raise ConfigError(f"--image-size: dataset {name!r} has a fixed image size (no size option)")
        kwargs["size"] = size
    try:
        ds = get_dataset(name, split, root=root or None, download=download, **kwargs)
    except TypeError as e:
        if not options:
            raise
        raise ConfigError(f"dataset {name!r}: bad option ({e})") from None  # an option the builder does not take
    if len(ds) == 0:
        raise DataError(f"dataset {name!r} holds no images")
    if limit and limit < len(ds):
        ds = Subset(ds, range(limit))
    return ds
