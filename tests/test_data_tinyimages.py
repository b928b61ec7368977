"""The 300K Random Images .npy and the 80M tiny_images.bin loaders on tiny files in the real formats."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from oe_core.data import get_dataset
from oe_core.errors import DataError


def write_npy(root, images):
    np.save(root / "300K_random_images.npy", images)
    return root / "300K_random_images.npy"


def test_300k_items_match_and_are_memory_mapped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    write_npy(tmp_path, images)
    ds = get_dataset("tinyimages300k", root=tmp_path)
    assert len(ds) == 6 and isinstance(ds._array, np.memmap)
    for i in range(6):
        img, target = ds[i]
        assert img.dtype == torch.uint8 and target == -1
        np.testing.assert_array_equal(img.numpy(), images[i].transpose(2, 0, 1))
    clone = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker gets: the path, not the data
    assert len(pickle.dumps(ds)) < images.nbytes
    np.testing.assert_array_equal(clone[5][0].numpy(), images[5].transpose(2, 0, 1))


@pytest.mark.parametrize("bad", ["truncated", "shape", "dtype", "garbage"])
def test_300k_bad_files_give_one_clear_error(tmp_path, bad):
    good = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "300K_random_images.npy"
    if bad == "truncated":
        write_npy(tmp_path, good)
        path.write_bytes(path.read_bytes()[:-3000])
    elif bad == "shape":
        write_npy(tmp_path, np.zeros((4, 32, 32), dtype=np.uint8))
    elif bad == "dtype":
        write_npy(tmp_path, good.astype(np.float32))
    else:
        path.write_bytes(b"not an npy file at all")
    with pytest.raises(DataError) as e:
        get_dataset("tinyimages300k", root=tmp_path)
    assert "tinyimages300k" in str(e.value) and "300K_random_images.npy" in str(e.value)


def test_300k_missing_file_names_the_url(tmp_path):
    with pytest.raises(DataError, match="hendrycks/300K_random_images.npy") as e:
        get_dataset("tinyimages300k", root=tmp_path)
    assert str(tmp_path) in str(e.value)


def write_bin(root, images):
    """MATLAB column-major layout: byte ``row + 32*col + 1024*channel`` of each 3072-byte record."""
    records = np.zeros((len(images), 3072), dtype=np.uint8)
    for n, im in enumerate(images):
        for r in range(32):
            for c in range(32):
                for ch in range(3):
                    records[n, r + 32 * c + 1024 * ch] = im[r, c, ch]
    (root / "tiny_images.bin").write_bytes(records.tobytes())


@pytest.fixture
def tiny80m(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    write_bin(tmp_path, images)
    (tmp_path / "80mn_cifar_idxs.txt").write_text("2\n4\n4\n1000\n")  # 1-based; 1000 is beyond this file
    return tmp_path, images


def test_80m_reads_records_in_matlab_order(tiny80m):
    root, images = tiny80m
    ds = get_dataset("tinyimages80m", root=root, exclude_cifar=False)
    assert len(ds) == 6
    for i in range(6):
        img, target = ds[i]
        assert target == -1
        np.testing.assert_array_equal(img.numpy(), images[i].transpose(2, 0, 1))


def test_80m_excluded_indices_are_replaced_deterministically(tiny80m):
    root, images = tiny80m
    ds = get_dataset("tinyimages80m", root=root)  # excludes 0-based 1 and 3
    np.testing.assert_array_equal(ds.excluded, [1, 3])
    allowed = {0, 2, 4, 5}
    for i in (0, 2, 4, 5):
        assert ds.source_index(i) == i
    again = get_dataset("tinyimages80m", root=root)
    for i in (1, 3):
        j = ds.source_index(i)
        assert j in allowed and again.source_index(i) == j
        np.testing.assert_array_equal(ds[i][0].numpy(), images[j].transpose(2, 0, 1))
    picks = {get_dataset("tinyimages80m", root=root, seed=s).source_index(1) for s in range(12)}
    assert picks <= allowed and len(picks) > 1  # the seed drives the redraw


def test_80m_survives_pickling_and_negative_indices(tiny80m):
    root, images = tiny80m
    ds = get_dataset("tinyimages80m", root=root, exclude_cifar=False)
    ds[0]  # opens the file
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[-1][0].numpy(), images[5].transpose(2, 0, 1))
    with pytest.raises(IndexError):
        clone[6]


def test_80m_bad_bin_size(tiny80m):
    root, _ = tiny80m
    path = root / "tiny_images.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="not a positive multiple of 3072") as e:
        get_dataset("tinyimages80m", root=root)
    assert "tiny_images.bin" in str(e.value) and "archive.org" in str(e.value)


def test_80m_missing_files(tiny80m):
    root, _ = tiny80m
    (root / "80mn_cifar_idxs.txt").unlink()
    with pytest.raises(DataError, match="80mn_cifar_idxs.txt.*exclude_cifar=False"):
        get_dataset("tinyimages80m", root=root)
    (root / "tiny_images.bin").unlink()
    with pytest.raises(DataError, match="missing tiny_images.bin"):
        get_dataset("tinyimages80m", root=root, exclude_cifar=False)


@pytest.mark.parametrize("text, match", [("3\n0\n", "1-based"), ("3\nx7\n", "not an integer"),
                                         ("1 2 3 4 5 6", "every one of the 6 images")])
def test_80m_bad_exclusion_lists(tiny80m, text, match):
    root, _ = tiny80m
    (root / "80mn_cifar_idxs.txt").write_text(text)
    with pytest.raises(DataError, match=match):
        get_dataset("tinyimages80m", root=root)
