"""UInt8ImageArray and the package-level registry contract."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import oe_core.data as data
from oe_core.data import UInt8ImageArray, dataset_info, get_dataset, list_datasets
from oe_core.errors import DataError, OEError


def test_items_without_and_with_transform():
    images = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    ds = UInt8ImageArray(images, [3, 1, 0, 2], classes=["a", "b", "c", "d"])
    img, target = ds[2]
    assert img.dtype == torch.uint8 and img.shape == (3, 5, 6) and target == 0 and ds.classes[3] == "d"
    np.testing.assert_array_equal(img.numpy(), images[2].transpose(2, 0, 1))
    seen = []
    UInt8ImageArray(images, -1, transform=lambda im: seen.append(im) or 0)[1]
    assert isinstance(seen[0], Image.Image) and seen[0].mode == "RGB"
    np.testing.assert_array_equal(np.asarray(seen[0]), images[1])


def test_read_only_and_strided_views_work_without_warnings():
    chw = np.random.default_rng(1).integers(0, 256, (3, 3, 4, 4), dtype=np.uint8)
    view = np.transpose(chw, (0, 2, 3, 1))
    view.flags.writeable = False
    ds = UInt8ImageArray(view, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img, target = ds[1]
    assert target == -1
    np.testing.assert_array_equal(img.numpy(), chw[1])
    img[0, 0, 0] = 0  # items are private copies


def test_default_collate_keeps_uint8():
    ds = UInt8ImageArray(np.zeros((6, 4, 4, 3), np.uint8), np.arange(6))
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    assert x.dtype == torch.uint8 and x.shape == (6, 3, 4, 4) and y.tolist() == list(range(6))


@pytest.mark.parametrize("images, targets", [(np.zeros((2, 4, 4, 3), np.float32), 0),
                                             (np.zeros((2, 4, 4), np.uint8), 0),
                                             (np.zeros((2, 4, 4, 3), np.uint8), [1, 2, 3]),
                                             (np.zeros((2, 4, 4, 3), np.uint8), [0.5, 1.0])])
def test_bad_arrays_are_data_errors(images, targets):
    with pytest.raises(DataError, match="UInt8ImageArray"):
        UInt8ImageArray(images, targets)


REQUIRED = {"cifar10": "id", "cifar100": "id", "svhn": "id", "tinyimages300k": "outlier", "tinyimages80m": "outlier",
            "textures": "ood", "places365": "ood", "lsun": "ood", "isun": "ood", "gaussian": "noise",
            "rademacher": "noise", "blobs": "noise", "uniform": "noise"}


def test_every_dataset_is_registered_with_its_metadata():
    assert set(REQUIRED) <= set(list_datasets())
    for name, role in REQUIRED.items():
        e = dataset_info(name)
        assert e.role == role
        if e.needs_root:
            assert e.files and e.url.count("http") >= 1
    assert dataset_info("cifar100").num_classes == 100 and dataset_info("svhn").can_download
    assert not dataset_info("textures").can_download
    for name in ("InBatchSampler", "OutlierBatchSampler", "random_crop_flip", "register_dataset", "DATASETS"):
        assert hasattr(data, name)


def test_registry_rejects_bad_requests(tmp_path):
    with pytest.raises(OEError, match="does not take option"):
        get_dataset("textures", root=tmp_path, sizes=32)
    with pytest.raises(OEError, match="no split 'train'"):
        get_dataset("lsun", split="train", root=tmp_path)
    with pytest.raises(DataError, match="needs --data-root"):
        get_dataset("places365")
    with pytest.raises(DataError, match="does not exist"):
        get_dataset("places365", root=tmp_path / "nowhere")


def test_options_of_a_builder_by_its_signature(monkeypatch):
    """A builder that takes ``**kwargs`` (as a plugin's may) gets every option and is generated at any size; one
    without ``size=`` has a fixed size, and ``--image-size`` says so."""
    from oe_core.data.registry import DATASETS, open_dataset, register_dataset, takes_size
    from oe_core.errors import ConfigError
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))
    seen = {}
    register_dataset("any-kw", splits=("test",), description="x", needs_root=False)(
        lambda root, split, transform, download, **kw: seen.update(kw) or [0])
    assert takes_size("any-kw") and takes_size("gaussian") and not takes_size("cifar10")
    open_dataset("any-kw", size=7, options={"colour": "red"})
    assert seen == {"size": 7, "colour": "red"}
    with pytest.raises(ConfigError, match="'cifar10' has a fixed image size"):
        open_dataset("cifar10", size=7)
