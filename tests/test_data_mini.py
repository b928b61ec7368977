"""The offline mini benchmark: contract, determinism, disjoint splits, cache, SVHN-likeness.

Statistics are recomputed independently (float64 numpy; PIL for crops) from the
returned uint8 images, not read back from the builder's own metadata.
"""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

import study.mini_benchmark.sets as sets
from oe_core.data import dataset_info, get_dataset
from oe_core.errors import OEError
from study.mini_benchmark.bundled_images import PHOTOS, load_lfw_faces, load_photo
from study.mini_benchmark.cache import cache_path, default_cache_dir
from study.mini_benchmark.sets import build_mini
from study.mini_benchmark.v2 import ID_CLASSES, OUTLIER_SOURCES, TEXTURE_SOURCES, VAL_OUTLIER_SOURCES

SETS = {"mini-id": ("train", "val", "test"), "mini-outliers": ("train",), "mini-val-outliers": ("val",),
        "mini-textures": ("test",),
        "mini-faces": ("test",), "mini-svhn": ("test",), "mini-svhn-saturated": ("test",)}
SIZE, N = 16, 96
LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mini_cache")


@pytest.fixture(scope="module")
def built(cache):
    """Every set/split once at 16 px, N images (seed 0), shared by the tests below."""
    return {(name, split): build_mini(name, split, size=SIZE, seed=0, n=N, cache_dir=cache)
            for name, splits in SETS.items() for split in splits}


def as_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def hsv_saturation(images: np.ndarray) -> np.ndarray:
    x = as_float(images)
    mx, mn = x.max(-1), x.min(-1)
    return np.where(mx > 0, (mx - mn) / np.where(mx > 0, mx, 1.0), 0.0)


def luma_spread(images: np.ndarray) -> np.ndarray:
    """Per-image contrast: 95th minus 5th percentile of the BT.601 luma."""
    lum = (as_float(images) @ LUMA).reshape(len(images), -1)
    return np.percentile(lum, 95, axis=1) - np.percentile(lum, 5, axis=1)


def test_registered_with_metadata_and_no_root():
    for name, splits in SETS.items():
        e = dataset_info(name)
        assert e.splits == splits and not e.needs_root and "mini" in e.tags
        assert e.files and e.url.startswith("https://") and e.description
    assert dataset_info("mini-id").role == "id" and dataset_info("mini-id").num_classes == len(ID_CLASSES)
    assert dataset_info("mini-outliers").role == "outlier" and dataset_info("mini-outliers").default_split == "train"
    assert dataset_info("mini-id").default_split == "test" and dataset_info("mini-val-outliers").default_split == "val"
    ood = ("mini-val-outliers", "mini-textures", "mini-faces", "mini-svhn", "mini-svhn-saturated")
    assert {dataset_info(n).role for n in ood} == {"ood"}


def test_items_follow_the_data_contract(cache):
    ds = get_dataset("mini-id", split="train", size=SIZE, n=N, cache_dir=cache)
    img, target = ds[5]
    assert img.dtype == torch.uint8 and img.shape == (3, SIZE, SIZE) and 0 <= target < len(ID_CLASSES)
    assert list(ds.classes) == list(ID_CLASSES)
    seen = []
    get_dataset("mini-svhn", size=SIZE, n=N, cache_dir=cache, transform=lambda im: seen.append(im) or 0)[0]
    assert isinstance(seen[0], Image.Image) and seen[0].mode == "RGB" and seen[0].size == (SIZE, SIZE)
    assert get_dataset("mini-faces", size=SIZE, n=N, cache_dir=cache)[0][1] == -1


def test_shapes_dtypes_and_targets(built):
    for (name, split), a in built.items():
        assert a.images.shape == (N, SIZE, SIZE, 3) and a.images.dtype == np.uint8, name
        assert a.images.max() > a.images.min()
        assert all(len(v) == N for v in a.meta.values()), name
        if name == "mini-id":
            assert np.array_equal(np.bincount(a.targets, minlength=8), np.full(8, N // 8))  # balanced
            assert np.array_equal(a.targets, a.meta["source"])
        else:
            assert np.all(a.targets == -1), name


def test_default_sizes():
    assert sets.DEFAULT_N[("mini-id", "train")] >= 2000 and sets.DEFAULT_N[("mini-id", "test")] == 1000
    assert sets.DEFAULT_N[("mini-outliers", "train")] >= 2000 and sets.DEFAULT_N_OOD == 1000


def test_deterministic_under_seed_and_different_across_seeds(tmp_path, built):
    again = build_mini("mini-id", "train", size=SIZE, seed=0, n=N, cache_dir=tmp_path / "fresh")  # rebuilt
    assert np.array_equal(again.images, built[("mini-id", "train")].images)
    assert np.array_equal(again.targets, built[("mini-id", "train")].targets)
    for name in ("mini-id", "mini-outliers", "mini-svhn"):
        split = SETS[name][0]
        other = build_mini(name, split, size=SIZE, seed=1, n=N, cache_dir=tmp_path)
        assert np.mean(other.images != built[(name, split)].images) > 0.5, name


def test_splits_are_independent_crops_of_the_whole_photo(built):
    """train, val and test draw crops from one distribution (anywhere in the photo, side 50-100% of its
    shorter side) with their own random streams: no two splits share a crop."""
    boxes = {}
    for split in ("train", "val", "test"):
        a = built[("mini-id", split)]
        for c, name in enumerate(ID_CLASSES):
            h, w = load_photo(name).shape[:2]
            box = a.meta["box"][a.targets == c]
            assert np.all(box[:, :2] >= -1e-9) and np.all(box[:, 2] <= w + 1e-9) and np.all(box[:, 3] <= h + 1e-9)
            side = box[:, 2] - box[:, 0]
            assert np.allclose(side, box[:, 3] - box[:, 1])
            assert np.all(side >= 0.5 * min(h, w) - 1e-6) and np.all(side <= min(h, w) + 1e-6)
        boxes[split] = {tuple(np.round(b, 6)) for b in a.meta["box"]}
    assert not (boxes["train"] & boxes["val"]) and not (boxes["train"] & boxes["test"])
    assert not (boxes["val"] & boxes["test"])


def test_thumbnails_show_their_recorded_crop(built):
    """Re-cut a few crops with a one-step PIL resize: the stored pixels match (up to the fast path)."""
    a = built[("mini-id", "test")]
    for i in range(8):
        photo = load_photo(ID_CLASSES[a.targets[i]])
        ref = np.asarray(Image.fromarray(photo).resize((SIZE, SIZE), Image.Resampling.BICUBIC,
                                                       box=tuple(a.meta["box"][i])), dtype=np.float64)
        if a.meta["flip"][i]:
            ref = ref[:, ::-1]
        assert np.abs(ref - a.images[i]).mean() < 4.0


def test_sources_are_disjoint_and_load_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the mini benchmark must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    sets = [set(ID_CLASSES), set(OUTLIER_SOURCES), set(VAL_OUTLIER_SOURCES), set(TEXTURE_SOURCES)]
    assert sum(map(len, sets)) == len(set().union(*sets))
    for name in set().union(*sets):
        assert name in PHOTOS
        img = load_photo(name)
        assert img.dtype == np.uint8 and (img.ndim == 2 or img.shape[2] == 3) and min(img.shape[:2]) >= 100
    faces = load_lfw_faces()
    assert faces.shape == (100, 25, 25) and faces.dtype == np.uint8


def test_grey_sources_are_toned_or_kept_grey(built):
    for name, sources in (("mini-outliers", OUTLIER_SOURCES), ("mini-val-outliers", VAL_OUTLIER_SOURCES),
                          ("mini-textures", TEXTURE_SOURCES)):
        a = built[(name, SETS[name][0])]
        grey_src = np.array([load_photo(s).ndim == 2 for s in sources])[a.meta["source"]]
        channels_equal = np.all(a.images == a.images[..., :1], axis=(1, 2, 3))
        toned = a.meta["toned"]
        assert np.all(channels_equal[grey_src & ~toned])
        assert not np.any(channels_equal[toned])
        assert not np.any(toned[~grey_src])
        if grey_src.all():
            assert 0.25 < toned.mean() < 0.75
    faces = built[("mini-faces", "test")]
    assert np.all(faces.images == faces.images[..., :1])


def test_rotations_and_flips_vary(built):
    t = built[("mini-textures", "test")].meta
    assert set(np.unique(t["rot90"])) == {0, 1, 2, 3}
    assert 0.25 < t["flip"].mean() < 0.75


def test_svhn_like_digits_follow_svhn_statistics(built):
    s = built[("mini-svhn", "test")]
    x = as_float(s.images).reshape(-1, 3)
    assert np.allclose(x.mean(0), [0.4377, 0.4438, 0.4728], atol=0.05)  # SVHN's channel means
    assert x.mean(0)[2] > x.mean(0)[0]                                   # its slight blue cast
    assert np.all((x.std(0) > 0.14) & (x.std(0) < 0.26))                 # SVHN's std is ~0.20
    assert hsv_saturation(s.images).mean() < 0.2
    spread = luma_spread(s.images)
    assert 0.12 < np.median(spread) < 0.35 and np.percentile(spread, 90) < 0.45
    contrast = np.abs((s.meta["fg"] - s.meta["bg"]) @ LUMA)
    assert np.all((contrast > 0.15 - 1e-9) & (contrast < 0.35 + 1e-9))


def test_saturated_variant_is_colourful_high_contrast_and_otherwise_the_same(built):
    s, v = built[("mini-svhn", "test")], built[("mini-svhn-saturated", "test")]
    assert hsv_saturation(v.images).mean() > 0.6
    assert np.median(luma_spread(v.images)) > np.median(luma_spread(s.images)) + 0.05
    assert np.all(np.abs((v.meta["fg"] - v.meta["bg"]) @ LUMA) >= 0.3 - 1e-9)
    assert np.array_equal(s.meta["label"], v.meta["label"]) and np.array_equal(s.meta["blur"], v.meta["blur"])
    # Same scenes: where the digit is (luma pulled from the background toward the digit colour) agrees.
    def digitness(a):
        lum = as_float(a.images) @ LUMA
        bg, fg = a.meta["bg"] @ LUMA, a.meta["fg"] @ LUMA
        return (lum - bg[:, None, None]) / (fg - bg)[:, None, None]
    ds, dv = digitness(s).reshape(N, -1), digitness(v).reshape(N, -1)
    corr = [np.corrcoef(p, q)[0, 1] for p, q in zip(ds, dv)]
    assert np.median(corr) > 0.8


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    first = build_mini("mini-faces", "test", size=8, seed=2, n=10, cache_dir=tmp_path)
    path = cache_path(tmp_path, {"name": "mini-faces", "split": "test", "size": 8, "seed": 2, "n": 10,
                                 "version": sets.BUILDER_VERSION})
    assert path.is_file()

    def must_not_build(*args):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(sets, "_BUILDS", {k: must_not_build for k in sets._BUILDS})
    second = build_mini("mini-faces", "test", size=8, seed=2, n=10, cache_dir=tmp_path)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.meta["box"], second.meta["box"])
    for changed in ({"size": 9}, {"seed": 3}, {"n": 11}):
        with pytest.raises(AssertionError, match="rebuilt"):
            build_mini("mini-faces", "test", **{"size": 8, "seed": 2, "n": 10, **changed}, cache_dir=tmp_path)
    monkeypatch.setattr(sets, "BUILDER_VERSION", sets.BUILDER_VERSION + 1)
    with pytest.raises(AssertionError, match="rebuilt"):
        build_mini("mini-faces", "test", size=8, seed=2, n=10, cache_dir=tmp_path)


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    first = build_mini("mini-faces", "test", size=8, seed=0, n=6, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not an npz")
    again = build_mini("mini-faces", "test", size=8, seed=0, n=6, cache_dir=tmp_path)
    assert np.array_equal(first.images, again.images)
    assert np.load(path)["images"].shape == (6, 8, 8, 3)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("OE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "mini"
    monkeypatch.delenv("OE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "oe_suite" / "mini"


def test_unwritable_cache_dir_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OEError, match="cache"):
        build_mini("mini-faces", "test", size=8, n=2, cache_dir=blocker / "sub")


@pytest.mark.parametrize("opts, word", [({"size": 4}, "size"), ({"size": 300}, "size"), ({"n": 0}, "n"),
                                        ({"seed": -1}, "seed"), ({"size": 16.0}, "size")])
def test_bad_options_are_one_clear_error(tmp_path, opts, word):
    with pytest.raises(OEError, match=f"option {word}"):
        get_dataset("mini-svhn", cache_dir=tmp_path, **opts)


def test_unknown_option_and_split_are_rejected(tmp_path):
    with pytest.raises(OEError, match="colour"):
        get_dataset("mini-svhn", colour=1, cache_dir=tmp_path)
    with pytest.raises(OEError, match="split"):
        get_dataset("mini-svhn", split="train", cache_dir=tmp_path)


def test_build_mini_rejects_unknown_sets_and_splits(tmp_path):
    with pytest.raises(OEError, match="unknown mini set"):
        build_mini("mini-cifar", "test", cache_dir=tmp_path)
    with pytest.raises(OEError, match="no split 'val'"):
        build_mini("mini-outliers", "val", cache_dir=tmp_path)
