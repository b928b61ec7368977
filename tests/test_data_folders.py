"""Image-folder OOD sets (Textures, Places365, LSUN, iSUN): real PNG/JPEG files of varying sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oe_core.data import get_dataset
from oe_core.errors import DataError, OEError

FOLDERS = {"textures": "dtd/images", "places365": "places365", "lsun": "lsun", "isun": "isun"}


def save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


@pytest.fixture
def dtd(tmp_path):
    """dtd/images/<class>/ with a wide PNG, a solid JPEG, a grey PNG, an RGBA PNG and non-image clutter."""
    rng = np.random.default_rng(0)
    base = tmp_path / "dtd" / "images"
    wide = rng.integers(0, 256, (32, 96, 3), dtype=np.uint8)        # H=32, W=96: no resize, crop cols 32..63
    save(base / "banded" / "a_wide.png", wide)
    save(base / "banded" / "b_solid.jpg", np.full((50, 70, 3), (200, 40, 90), dtype=np.uint8))
    save(base / "cracked" / "c_grey.png", np.full((40, 40), 77, dtype=np.uint8))
    save(base / "cracked" / "d_rgba.png", rng.integers(0, 256, (64, 48, 4), dtype=np.uint8))
    (base / "cracked" / "notes.txt").write_text("not an image")
    save(base / "cracked" / ".hidden.png", wide)
    return tmp_path, wide


def test_textures_loads_every_image_as_32x32_uint8(dtd):
    root, wide = dtd
    ds = get_dataset("textures", root=root)
    assert [p.name for p in ds.files] == ["a_wide.png", "b_solid.jpg", "c_grey.png", "d_rgba.png"]
    for i in range(len(ds)):
        img, target = ds[i]
        assert img.dtype == torch.uint8 and img.shape == (3, 32, 32) and target == -1
    np.testing.assert_array_equal(ds[0][0].numpy(), wide[:, 32:64].transpose(2, 0, 1))  # center crop
    solid = ds[1][0].numpy().astype(int)
    assert np.abs(solid - np.array([200, 40, 90])[:, None, None]).max() <= 3  # JPEG + resize of a flat colour
    assert (ds[2][0].numpy() == 77).all()  # greyscale -> RGB


def test_size_option_and_transform(dtd):
    root, wide = dtd
    seen = []
    ds = get_dataset("textures", root=root, size=16, transform=lambda im: seen.append(im) or 0)
    ds[3]
    assert seen[0].mode == "RGB" and seen[0].size == (16, 16)
    assert get_dataset("textures", root=root, size=32)[0][0].shape == (3, 32, 32)
    with pytest.raises(OEError, match="size must be >= 1"):
        get_dataset("textures", root=root, size=0)


@pytest.mark.parametrize("name", ["places365", "lsun", "isun"])
def test_flat_and_nested_folders_load(tmp_path, name):
    base = tmp_path / FOLDERS[name]
    save(base / "a.jpeg", np.zeros((36, 36, 3), dtype=np.uint8))
    save(base / "sub" / "deeper" / "y.png", np.full((20, 30, 3), 255, dtype=np.uint8))
    ds = get_dataset(name, root=tmp_path)
    assert len(ds) == 2
    assert (ds[0][0] == 0).all() and (ds[1][0] == 255).all() and ds[1][0].shape == (3, 32, 32)


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_missing_folder_is_one_clear_error(tmp_path, name):
    with pytest.raises(DataError) as e:
        get_dataset(name, root=tmp_path)
    assert name in str(e.value) and str(tmp_path / FOLDERS[name]) in str(e.value) and "http" in str(e.value)


def test_empty_folder_is_one_clear_error(tmp_path):
    (tmp_path / "lsun" / "empty").mkdir(parents=True)
    (tmp_path / "lsun" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images"):
        get_dataset("lsun", root=tmp_path)


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "places365" / "broken.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    ds = get_dataset("places365", root=tmp_path)
    with pytest.raises(DataError, match="cannot read image") as e:
        ds[0]
    assert str(bad) in str(e.value)
