"""Synthetic noise sets: constructions against independent float64 numpy/scipy computations."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
from PIL import Image

from oe_core.data import dataset_info, get_dataset, to_unit_range
from oe_core.data.noise import blobs_from_mask, quantise
from oe_core.errors import OEError

KINDS = ["gaussian", "rademacher", "blobs", "uniform"]


def values(kind, n=20, size=32, seed=0):
    """All values of a set mapped back to [-1, 1], float64."""
    ds = get_dataset(kind, n=n, size=size, seed=seed)
    return to_unit_range(torch.stack([ds[i][0] for i in range(len(ds))])).double().numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_items_follow_the_contract(kind):
    entry = dataset_info(kind)
    assert entry.role == "noise" and not entry.normalize and not entry.needs_root
    ds = get_dataset(kind, n=5, size=8)
    assert len(ds) == 5
    img, target = ds[4]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8) and target == -1
    seen = []
    get_dataset(kind, n=2, transform=lambda im: seen.append(im) or 0)[1]
    assert isinstance(seen[0], Image.Image) and seen[0].mode == "RGB" and seen[0].size == (32, 32)
    assert len(get_dataset(kind)) == 20_000  # the reference's CIFAR noise pool


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_under_the_seed(kind):
    a, b = get_dataset(kind, n=4, seed=3), get_dataset(kind, n=9, seed=3)
    c = get_dataset(kind, n=4, seed=4)
    for i in range(4):
        assert torch.equal(a[i][0], b[i][0])  # image i depends on (seed, i) only
    assert not all(torch.equal(a[i][0], c[i][0]) for i in range(4))
    assert not torch.equal(a[0][0], a[1][0])


def test_gaussian_is_clipped_normal_with_std_half():
    v = values("gaussian").ravel()
    assert v.min() >= -1 and v.max() <= 1
    z = scipy.stats.norm(0, 0.5)
    clipped_mass = 2 * z.cdf(-1)  # P(|N(0, 0.25)| > 1) = 4.55%
    second_moment = scipy.integrate.quad(lambda x: x * x * z.pdf(x), -1, 1)[0] + clipped_mass
    assert abs(v.mean()) < 0.01
    assert abs(np.mean(v * v) - second_moment) < 0.01
    assert abs(np.mean(np.abs(v) > 1 - 1 / 255) - clipped_mass) < 0.005


def test_rademacher_is_plus_minus_one():
    v = values("rademacher")
    assert set(np.unique(v)) == {-1.0, 1.0}
    assert abs((v > 0).mean() - 0.5) < 0.01


def test_uniform_moments():
    v = values("uniform")
    assert v.min() >= -1 and v.max() <= 1
    assert abs(v.mean()) < 0.01 and abs(v.var() - 1 / 3) < 0.01


def test_blobs_blur_runs_over_the_channel_axis_too():
    mask = np.random.default_rng(0).binomial(1, 0.7, (32, 32, 3))
    blurred = scipy.ndimage.gaussian_filter(mask.astype(np.float64), sigma=1.5, mode="nearest", truncate=4.0)
    expected = np.where(blurred < 0.75, 0.0, blurred) * 2 - 1
    np.testing.assert_allclose(blobs_from_mask(mask), expected, atol=1e-12)
    per_channel = np.stack([scipy.ndimage.gaussian_filter(mask[..., c].astype(np.float64), 1.5, mode="nearest")
                            for c in range(3)], -1)
    assert not np.allclose(blurred, per_channel)  # the 2-D-per-channel reading would differ


def test_blobs_sparsity_matches_an_independent_simulation():
    v = values("blobs", n=30)
    assert np.all((v == -1) | (v >= 0.5 - 1 / 255))  # background, or blurred mass >= 0.75
    rng = np.random.default_rng(12345)
    sim = [scipy.ndimage.gaussian_filter(rng.binomial(1, 0.7, (32, 32, 3)).astype(float), 1.5, mode="nearest")
           for _ in range(30)]
    expected_background = np.mean([np.mean(s < 0.75) for s in sim])
    assert 0.3 < expected_background < 0.99
    assert abs(np.mean(v == -1) - expected_background) < 0.05


def test_quantise_round_trips_within_one_level():
    x = np.linspace(-1, 1, 10_001)
    q = quantise(x)
    assert q.dtype == np.uint8 and q[0] == 0 and q[-1] == 255
    back = to_unit_range(torch.from_numpy(q)).double().numpy()
    assert np.abs(back - x).max() <= 1 / 255 + 1e-6  # half a level; to_unit_range is float32
    assert back[0] == -1.0 and back[-1] == 1.0


@pytest.mark.parametrize("option", [{"n": 0}, {"size": 0}, {"seed": -1}])
def test_bad_options(option):
    with pytest.raises(OEError, match="gaussian"):
        get_dataset("gaussian", **option)
