"""A data root with every dataset of the paper's experiments in its real on-disk format, a few dozen images each.

``write_paper_data_root(root)`` writes

* ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``) and ``cifar-100-python/``
  (``train``, ``test``, ``meta``): the python pickles, rows of 3072 bytes (R plane, G plane, B plane);
* ``svhn/test_32x32.mat``: ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) with label 10 for digit 0;
* ``tiny_images.bin`` (3072-byte records in MATLAB column-major order) and ``80mn_cifar_idxs.txt`` (1-based);
* ``300K_random_images.npy``: uint8 (N, 32, 32, 3);
* ``dtd/images/<class>/``, ``places365/<class>/``, ``lsun/``, ``isun/``: JPEG/PNG files of assorted sizes;
* ``checksums.json``: the md5s torchvision checks, for the files written here.

torchvision verifies the CIFAR and SVHN files against the md5s of the real archives.  In the test process the
tables are patched directly (:func:`patch_checksums`); subprocesses (the paper scripts) get them through
``tests/fixture_site/sitecustomize.py``, which reads ``checksums.json`` when ``OE_TEST_CHECKSUMS`` names it.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

SITE = Path(__file__).resolve().with_name("fixture_site")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> CIFAR rows (N, 3072): the R plane, then G, then B, each row-major."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _images(rng: np.random.Generator, n: int, shift: int = 0) -> np.ndarray:
    """Smooth-ish random images (blocky colour fields plus noise), so models have something to fit."""
    coarse = rng.integers(0, 256, (n, 4, 4, 3)).repeat(8, 1).repeat(8, 2)
    noise = rng.integers(-24, 25, (n, 32, 32, 3))
    return np.clip(coarse + noise + shift, 0, 255).astype(np.uint8)


def _write_cifar(root: Path, rng: np.random.Generator, kind: str, n_train: int, n_test: int) -> dict:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, n_classes, label_key = ((CIFAR10, 10, "labels") if kind == "cifar10" else (CIFAR100, 100, "fine_labels"))
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, images: np.ndarray) -> list:
        labels = rng.integers(0, n_classes, len(images))
        entry = {"batch_label": name, "data": _rows(images), label_key: [int(v) for v in labels],
                 "filenames": [f"{name}_{i}.png" for i in range(len(images))]}
        if kind == "cifar100":
            entry["coarse_labels"] = [int(v) // 5 for v in labels]
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        return [name, _md5(folder / name)]

    names = [f for f, _ in cls.train_list]
    per = n_train // len(names)
    train_list = [dump(name, _images(rng, per)) for name in names]
    test_list = [dump(cls.test_list[0][0], _images(rng, n_test))]
    meta_key = cls.meta["key"]
    meta = {meta_key: [f"class{i}" for i in range(n_classes)]}
    if kind == "cifar100":
        meta["coarse_label_names"] = [f"super{i}" for i in range(20)]
    meta_path = folder / cls.meta["filename"]
    meta_path.write_bytes(pickle.dumps(meta, protocol=2))
    return {"train_list": train_list, "test_list": test_list, "meta_md5": _md5(meta_path)}


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(arr).save(path)


def _write_folder(folder: Path, rng: np.random.Generator, n: int, classes: tuple[str, ...], ext: str) -> None:
    for i in range(n):
        h, w = int(rng.integers(32, 64)), int(rng.integers(32, 80))
        arr = np.clip(rng.integers(0, 256, (1, 1, 3)) + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
        sub = folder / classes[i % len(classes)] if classes else folder
        _save(sub / f"img_{i:03d}{ext}", arr)


def write_paper_data_root(root: Path, n: int = 24, seed: int = 0) -> Path:
    """Write every paper dataset under ``root`` (``n`` test images per set, ``2n`` CIFAR training images);
    returns the path of ``checksums.json``."""
    from torchvision.datasets import SVHN

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sums = {"cifar10": _write_cifar(root, rng, "cifar10", 2 * n, n),
            "cifar100": _write_cifar(root, rng, "cifar100", 2 * n, n)}

    svhn = _images(rng, n, shift=-40)
    digits = rng.integers(0, 10, n)
    (root / "svhn").mkdir(exist_ok=True)
    mat = root / "svhn" / SVHN.split_list["test"][1]
    scipy.io.savemat(mat, {"X": np.moveaxis(svhn, 0, -1),
                           "y": np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)})
    sums["svhn"] = {"test": _md5(mat)}

    tiny = _images(rng, 4 * n, shift=30)
    # MATLAB column-major records: byte row + 32*col + 1024*channel
    (root / "tiny_images.bin").write_bytes(np.ascontiguousarray(tiny.transpose(0, 3, 2, 1)).tobytes())
    (root / "80mn_cifar_idxs.txt").write_text("2\n5\n9\n")
    np.save(root / "300K_random_images.npy", _images(rng, 2 * n, shift=30))

    _write_folder(root / "dtd" / "images", rng, n, ("banded", "cracked", "dotted"), ".jpg")
    _write_folder(root / "places365", rng, n, ("abbey", "beach"), ".jpg")
    _write_folder(root / "lsun", rng, n, (), ".jpg")
    _write_folder(root / "isun", rng, n, (), ".png")

    path = root / "checksums.json"
    path.write_text(json.dumps(sums, indent=1) + "\n")
    return path


def apply_checksums(path: str | Path) -> None:
    """Point torchvision's md5 tables at the fixture files listed in ``path`` (``checksums.json``)."""
    from torchvision.datasets import CIFAR10, CIFAR100, SVHN

    sums = json.loads(Path(path).read_text())
    for cls, key in ((CIFAR10, "cifar10"), (CIFAR100, "cifar100")):
        cls.train_list = sums[key]["train_list"]
        cls.test_list = sums[key]["test_list"]
        cls.meta = {**cls.meta, "md5": sums[key]["meta_md5"]}
    table = {k: list(v) for k, v in SVHN.split_list.items()}
    for split, md5 in sums["svhn"].items():
        table[split][2] = md5
    SVHN.split_list = table


def script_env(checksums: Path, **extra: str) -> dict:
    """Environment for running the paper scripts on the fixture root: the project's Python, and the fixture's
    md5s applied in every Python process they start."""
    import sys

    path = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OE_PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "PYTHONPATH": path, "OE_TEST_CHECKSUMS": str(checksums), **extra}
