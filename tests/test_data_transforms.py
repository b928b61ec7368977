"""Transforms: uint8 conversion, batch crop+flip augmentation, normalisation, [-1, 1] scaling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oe_core.data import CIFAR_MEAN, CIFAR_STD, normalize, random_crop_flip, to_uint8_tensor, to_unit_range
from oe_core.errors import OEError


def test_reference_constants():
    np.testing.assert_allclose(np.array(CIFAR_MEAN) * 255, [125.3, 123.0, 113.9])
    np.testing.assert_allclose(np.array(CIFAR_STD) * 255, [63.0, 62.1, 66.7])


def test_to_uint8_tensor():
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = to_uint8_tensor(Image.fromarray(arr))
    assert t.dtype == torch.uint8 and t.shape == (3, 5, 7)
    np.testing.assert_array_equal(t.numpy(), arr.transpose(2, 0, 1))
    grey = to_uint8_tensor(Image.fromarray(arr[:, :, 0]))
    np.testing.assert_array_equal(grey.numpy(), np.repeat(arr[None, :, :, 0], 3, 0))


def all_crop_flips(img, p):
    """Every (padding-p zero-padded crop, optional flip) of one (C, H, W) numpy image."""
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * p, w + 2 * p), img.dtype)
    padded[:, p:p + h, p:p + w] = img
    out = []
    for dy in range(2 * p + 1):
        for dx in range(2 * p + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            out += [(dy, dx, False, crop), (dy, dx, True, crop[:, :, ::-1])]
    return out


def test_random_crop_flip_outputs_are_valid_crops_and_cover_all_choices():
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(1))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    used = set()
    for xi, yi in zip(x.numpy(), y.numpy()):
        hits = [(dy, dx, f) for dy, dx, f, c in all_crop_flips(xi, 2) if np.array_equal(c, yi)]
        assert hits, "output is not a padded crop (+flip) of its input"
        used.update(hits)
    assert {f for _, _, f in used} == {False, True}
    assert {dy for dy, _, _ in used} == set(range(5)) and {dx for _, dx, _ in used} == set(range(5))


def test_random_crop_flip_is_deterministic_under_the_generator():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    c = random_crop_flip(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_only_and_crop_only():
    x = torch.randint(0, 256, (32, 3, 6, 6), dtype=torch.uint8)
    y = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(0))
    flipped = [torch.equal(yi, xi.flip(-1)) for xi, yi in zip(x, y)]
    assert all(f or torch.equal(yi, xi) for f, xi, yi in zip(flipped, x, y)) and 0 < sum(flipped) < 32
    z = random_crop_flip(x, padding=1, generator=torch.Generator().manual_seed(0), flip=False)
    for xi, zi in zip(x.numpy(), z.numpy()):
        assert any(np.array_equal(c, zi) for _, _, f, c in all_crop_flips(xi, 1) if not f)


def test_normalize_matches_numpy():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    expected = (x.numpy().astype(np.float64) / 255 - np.array(CIFAR_MEAN)[:, None, None]) / np.array(CIFAR_STD)[
        :, None, None]
    got = normalize(x)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalize(x[0], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).numpy(),
                               (x[0].numpy() / 255 - 0.5) / 0.25, rtol=1e-5, atol=1e-5)


def test_to_unit_range_matches_numpy():
    x = torch.arange(256, dtype=torch.uint8)
    np.testing.assert_allclose(to_unit_range(x).numpy(), np.arange(256) / 127.5 - 1, atol=1e-6)
    assert to_unit_range(x)[0] == -1 and to_unit_range(x)[-1] == 1


@pytest.mark.parametrize("call", [lambda: normalize(torch.zeros(1, 3, 2, 2)),
                                  lambda: to_unit_range(torch.zeros(3, dtype=torch.int64)),
                                  lambda: random_crop_flip(torch.zeros(3, 4, 4, dtype=torch.uint8)),
                                  lambda: normalize(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))])
def test_wrong_inputs_are_one_clear_error(call):
    with pytest.raises(OEError):
        call()
