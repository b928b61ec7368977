"""CIFAR-10/100 and SVHN through torchvision's real classes on tiny files in the real formats."""
from __future__ import annotations

import hashlib
import pickle
import urllib.error

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision.datasets import SVHN

from oe_core.data import get_dataset
from oe_core.errors import DataError


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_items_match_the_files(write_cifar, kind):
    fx = write_cifar(kind)
    train = get_dataset(kind, split="train", root=fx.root)
    test = get_dataset(kind, split="test", root=fx.root)
    assert len(train) == len(fx.train_images) and len(test) == 3
    for ds, images, labels in ((train, fx.train_images, fx.train_labels), (test, fx.test_images, fx.test_labels)):
        for i in range(len(ds)):
            img, target = ds[i]
            assert img.dtype == torch.uint8 and img.shape == (3, 32, 32)
            np.testing.assert_array_equal(img.numpy(), images[i].transpose(2, 0, 1))
            assert target == labels[i]
    assert train.classes == fx.classes


def test_cifar_transform_gets_rgb_pil(write_cifar):
    fx = write_cifar("cifar10")
    seen = []
    ds = get_dataset("cifar10", split="test", root=fx.root, transform=lambda im: seen.append(im) or 7)
    assert ds[1] == (7, int(fx.test_labels[1]))
    assert isinstance(seen[0], Image.Image) and seen[0].mode == "RGB" and seen[0].size == (32, 32)
    np.testing.assert_array_equal(np.asarray(seen[0]), fx.test_images[1])


def test_cifar_batches_collate_to_uint8(write_cifar):
    fx = write_cifar("cifar10")
    x, y = next(iter(torch.utils.data.DataLoader(get_dataset("cifar10", "train", fx.root), batch_size=4)))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 32, 32) and y.dtype == torch.int64


def test_cifar_missing_files_give_one_clear_error(tmp_path):
    with pytest.raises(DataError) as e:
        get_dataset("cifar10", split="test", root=tmp_path)
    msg = str(e.value)
    for part in ("cifar10", str(tmp_path / "cifar-10-batches-py"), "data_batch_1", "test_batch",
                 "https://www.cs.toronto.edu/~kriz/", "download=True"):
        assert part in msg


def test_cifar_checksum_mismatch_is_reported_as_corrupt(write_cifar):
    fx = write_cifar("cifar10")
    path = fx.folder / "test_batch"
    path.write_bytes(path.read_bytes()[:-100])  # truncated: md5 no longer matches
    with pytest.raises(DataError, match="corrupt") as e:
        get_dataset("cifar10", split="test", root=fx.root)
    assert str(fx.folder) in str(e.value) and "cifar10" in str(e.value)


def test_cifar_unreadable_pickle_is_reported_as_corrupt(write_cifar, monkeypatch):
    fx = write_cifar("cifar100")
    path = fx.folder / "test"
    path.write_bytes(b"\x80\x02garbage, not a pickle")
    from torchvision.datasets import CIFAR100
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5_of(path)]])  # checksum passes, pickle fails
    with pytest.raises(DataError, match="corrupt"):
        get_dataset("cifar100", split="test", root=fx.root)


def test_cifar_pickle_without_data_key_is_reported(write_cifar, monkeypatch):
    fx = write_cifar("cifar10")
    path = fx.folder / "test_batch"
    path.write_bytes(pickle.dumps({"labels": [1, 2]}, protocol=2))
    from torchvision.datasets import CIFAR10
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5_of(path)]])
    with pytest.raises(DataError, match="KeyError"):
        get_dataset("cifar10", split="test", root=fx.root)


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    root = tmp_path / "new"  # created because download=True
    with pytest.raises(DataError, match="download failed"):
        get_dataset("cifar10", split="train", root=root, download=True)
    assert root.is_dir()


def write_svhn(folder, split, monkeypatch, n=5):
    """SVHN's .mat layout: X (32, 32, 3, N) uint8, y (N, 1) with label 10 for digit 0."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    digits = np.array([0, 1, 9, 0, 5][:n])
    folder.mkdir(parents=True, exist_ok=True)
    filename = SVHN.split_list[split][1]
    scipy.io.savemat(folder / filename, {"X": np.moveaxis(images, 0, -1),
                                         "y": np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)})
    table = {k: list(v) for k, v in SVHN.split_list.items()}
    table[split][2] = md5_of(folder / filename)
    monkeypatch.setattr(SVHN, "split_list", table)
    return images, digits


@pytest.mark.parametrize("split", ["test", "extra"])
def test_svhn_items_match_the_mat_file(tmp_path, monkeypatch, split):
    images, digits = write_svhn(tmp_path / "svhn", split, monkeypatch)
    ds = get_dataset("svhn", split=split, root=tmp_path)
    assert len(ds) == 5
    for i in range(5):
        img, target = ds[i]
        assert img.dtype == torch.uint8 and img.shape == (3, 32, 32)
        np.testing.assert_array_equal(img.numpy(), images[i].transpose(2, 0, 1))
        assert target == digits[i]


def test_svhn_missing_and_corrupt(tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        get_dataset("svhn", split="test", root=tmp_path)
    for part in ("svhn", "test_32x32.mat", str(tmp_path / "svhn"), "http://ufldl.stanford.edu/housenumbers/",
                 "download=True"):
        assert part in str(e.value)
    write_svhn(tmp_path / "svhn", "test", monkeypatch)
    path = tmp_path / "svhn" / "test_32x32.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    table = {k: list(v) for k, v in SVHN.split_list.items()}
    table["test"][2] = md5_of(path)
    monkeypatch.setattr(SVHN, "split_list", table)
    with pytest.raises(DataError, match="corrupt"):
        get_dataset("svhn", split="test", root=tmp_path)
