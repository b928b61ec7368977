"""Shared test fixtures.

Data fixtures write tiny copies of the real on-disk dataset formats.  torchvision
verifies CIFAR files by md5 (``_check_integrity`` / ``_load_meta`` compare against the
class attributes ``train_list``, ``test_list`` and ``meta``), so the CIFAR fixture
monkeypatches those md5 values to the md5s of the fixture files.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from torchvision.datasets import CIFAR10, CIFAR100

# the mini benchmark's datasets when the tree is not pip-installed (as scripts/_env.sh does); subprocesses inherit it
if "study.mini_benchmark" not in os.environ.get("OE_DATASET_MODULES", "").split(","):
    os.environ["OE_DATASET_MODULES"] = ",".join(filter(None, ["study.mini_benchmark",
                                                              os.environ.get("OE_DATASET_MODULES")]))


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> CIFAR's (N, 3072) rows: the R plane, then G, then B, each row-major."""
    return np.stack([np.concatenate([im[:, :, 0].ravel(), im[:, :, 1].ravel(), im[:, :, 2].ravel()])
                     for im in images]).astype(np.uint8)


@dataclass
class CifarFixture:
    root: Path
    folder: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


@pytest.fixture
def write_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], CifarFixture]:
    """``write_cifar("cifar10" | "cifar100")``: write a tiny copy of the python-pickle version under
    ``tmp_path/data`` (2 images per CIFAR-10 train batch, 10 / 3 images for CIFAR-100 train / test)
    and patch torchvision's md5 table to the fixture files' md5s."""

    def write(kind: str) -> CifarFixture:
        rng = np.random.default_rng(len(kind))
        cls, n_classes = (CIFAR10, 10) if kind == "cifar10" else (CIFAR100, 100)
        label_key = "labels" if kind == "cifar10" else "fine_labels"
        root = tmp_path / "data"
        folder = root / cls.base_folder
        folder.mkdir(parents=True, exist_ok=True)

        def dump(name: str, images: np.ndarray, labels: np.ndarray) -> list:
            entry = {"batch_label": name, "data": cifar_rows(images), label_key: [int(v) for v in labels]}
            if kind == "cifar100":
                entry["coarse_labels"] = [int(v) // 5 for v in labels]
            (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
            return [name, md5_of(folder / name)]

        train_names = [f for f, _ in cls.train_list]
        per_file = 2 if len(train_names) > 1 else 10
        train_images = rng.integers(0, 256, (per_file * len(train_names), 32, 32, 3), dtype=np.uint8)
        train_labels = rng.integers(0, n_classes, len(train_images))
        test_images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        test_labels = rng.integers(0, n_classes, 3)
        train_list = [dump(name, train_images[i * per_file:(i + 1) * per_file],
                           train_labels[i * per_file:(i + 1) * per_file]) for i, name in enumerate(train_names)]
        test_list = [dump(cls.test_list[0][0], test_images, test_labels)]
        classes = [f"class{i}" for i in range(n_classes)]
        meta_path = folder / cls.meta["filename"]
        meta_path.write_bytes(pickle.dumps({cls.meta["key"]: classes}, protocol=2))
        monkeypatch.setattr(cls, "train_list", train_list)
        monkeypatch.setattr(cls, "test_list", test_list)
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5_of(meta_path)})
        return CifarFixture(root, folder, train_images, train_labels, test_images, test_labels, classes)

    return write
