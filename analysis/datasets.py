"""Which images an evaluation scores: dataset specs, the default OOD suites, and batches of uint8 images.

A dataset spec is ``NAME[:SPLIT][,KEY=VALUE...]`` -- a registered dataset (``python -m oe_core.data``), an
optional split (default: ``test`` for the in-distribution set, the registry's default split otherwise) and
builder options, e.g. ``gaussian,size=16,n=2000`` or ``mini-svhn,size=16``.  Its fingerprint (name, split,
options and the image limit) is part of the score-cache key.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Subset

from oe_core.data import dataset_info, open_dataset
from oe_core.data.folders import ImageFiles
from oe_core.errors import ConfigError, OEError

# The paper's OOD suites (reference CIFAR/test.py), in its table order.
_PAPER_NATURAL = ("textures", "svhn", "places365", "lsun")
DEFAULT_SUITES: dict[str, tuple[str, ...]] = {
    "cifar10": ("gaussian", "rademacher", "blobs", *_PAPER_NATURAL, "cifar100"),
    "cifar100": ("gaussian", "rademacher", "blobs", *_PAPER_NATURAL, "cifar10"),
    "mini-id": ("gaussian", "rademacher", "blobs", "mini-textures", "mini-svhn", "mini-svhn-saturated",
                "mini-faces"),
    "mini3-id": ("gaussian", "rademacher", "blobs", "mini-textures", "mini-svhn", "mini-svhn-saturated",
                 "mini-faces"),
    "mini4-id": ("gaussian", "rademacher", "blobs", "mini-textures", "mini-svhn", "mini-svhn-saturated",
                 "mini-faces"),
}

# Names printed in tables and figures (the paper's spelling); other sets print as registered.
DISPLAY_NAMES: dict[str, str] = {
    "gaussian": "Gaussian", "rademacher": "Rademacher", "blobs": "Blobs", "uniform": "Uniform",
    "textures": "Textures", "svhn": "SVHN", "places365": "Places365", "lsun": "LSUN", "isun": "iSUN",
    "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
}

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset to score: registry name, split and builder options."""

    name: str
    split: str
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str, default_split: Optional[str] = None) -> "DatasetSpec":
        """``NAME[:SPLIT][,KEY=VALUE...]`` -> spec; the split defaults to ``default_split`` or the registry's."""
        head, *opts = [p.strip() for p in str(text).split(",")]
        name, _, split = head.partition(":")
        if not name or not _NAME.match(name):
            raise ConfigError(f"dataset spec {text!r}: expected NAME[:SPLIT][,KEY=VALUE...]")
        entry = dataset_info(name)
        split = split or (default_split if default_split in entry.splits else entry.default_split)
        if split not in entry.splits:
            raise ConfigError(f"dataset spec {text!r}: {name!r} has no split {split!r}; "
                              f"splits: {', '.join(entry.splits)}")
        options = []
        for opt in opts:
            key, eq, value = opt.partition("=")
            if not eq or not key:
                raise ConfigError(f"dataset spec {text!r}: option {opt!r} is not KEY=VALUE")
            options.append((key.strip(), _parse_value(value.strip())))
        return cls(entry.name, split, tuple(sorted(options)))

    def with_options(self, **extra: Any) -> "DatasetSpec":
        """The spec with ``extra`` options added (existing options win)."""
        merged = {**extra, **dict(self.options)}
        return DatasetSpec(self.name, self.split, tuple(sorted(merged.items())))

    @property
    def text(self) -> str:
        """The spec as it would be typed (round-trips through :meth:`parse`)."""
        return ",".join([f"{self.name}:{self.split}"] + [f"{k}={v}" for k, v in self.options])

    @property
    def slug(self) -> str:
        """A file-name-safe form of :attr:`text`."""
        return re.sub(r"[^A-Za-z0-9_.\-=]+", "_", self.text.replace(":", "-").replace(",", "_"))

    @property
    def display(self) -> str:
        return DISPLAY_NAMES.get(self.name, self.name)

    def fingerprint(self, limit: int = 0) -> str:
        """Canonical JSON of everything that decides which images are scored."""
        return json.dumps({"name": self.name, "split": self.split, "options": [list(o) for o in self.options],
                           "limit": int(limit)}, sort_keys=True, default=str)

    def to_dict(self) -> dict:
        return {"name": self.name, "split": self.split, "options": dict(self.options), "text": self.text}

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetSpec":
        return cls(d["name"], d["split"], tuple(sorted(d.get("options", {}).items())))

    def open(self, data_root: str = "", limit: int = 0):
        """The dataset of this spec (uint8 images); ``limit > 0`` keeps its first ``limit`` images.

        Missing or corrupt data raises :class:`oe_core.errors.DataError` naming the set, path and source.
        """
        return open_dataset(self.name, self.split, root=data_root, options=dict(self.options), limit=limit)

    @property
    def fed_raw(self) -> bool:
        """True for sets the reference feeds classifiers un-normalised (the synthetic noise)."""
        return not dataset_info(self.name).normalize


def ood_suite(id_spec: DatasetSpec, ood: list[str]) -> list[DatasetSpec]:
    """The OOD specs to evaluate: ``ood`` as given, or the default suite of the ID set for ``["default"]``.

    Default-suite sets that are generated at a chosen size (no data root needed) inherit the ID spec's
    ``size`` option, so e.g. ``--id-dataset mini-id,size=16`` gets 16x16 noise.
    """
    if list(ood) != ["default"]:
        return [DatasetSpec.parse(t) for t in ood]
    if id_spec.name not in DEFAULT_SUITES:
        raise ConfigError(f"no default OOD suite for {id_spec.name!r} (defaults exist for "
                          f"{', '.join(DEFAULT_SUITES)}); list the sets with --ood")
    size = dict(id_spec.options).get("size")
    specs = [DatasetSpec.parse(n) for n in DEFAULT_SUITES[id_spec.name]]
    if size is None:
        return specs
    return [s.with_options(size=size) if not dataset_info(s.name).needs_root else s for s in specs]


def image_files(dataset) -> Optional[ImageFiles]:
    """The image-folder dataset under ``dataset`` (through subsets), or ``None`` for other kinds."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset if isinstance(dataset, ImageFiles) else None


def iter_batches(dataset, batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 image batches (B, 3, H, W) of ``dataset`` in order (labels dropped)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    for images, _ in loader:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise OEError(f"expected uint8 image batches (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        yield images
