"""The toy-shapes dataset: contract, determinism, labels carried by colour."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from oe_core.data import dataset_info, get_dataset
from oe_core.errors import ConfigError
from study.mini_benchmark.toy_shapes import PALETTE


def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([ds[i][0].numpy() for i in range(len(ds))]), np.array([ds[i][1] for i in range(len(ds))])


def test_contract_and_determinism():
    entry = dataset_info("toy-shapes")
    assert entry.role == "id" and entry.num_classes == 10 and not entry.needs_root
    ds = get_dataset("toy-shapes", "train", size=12, n=40)
    x, y = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 12, 12) and 0 <= y < 10
    a, la = arrays(ds)
    b, lb = arrays(get_dataset("toy-shapes", "train", size=12, n=40))
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = arrays(get_dataset("toy-shapes", "train", size=12, n=40, seed=1))
    d, _ = arrays(get_dataset("toy-shapes", "test", size=12, n=40))
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    assert len(get_dataset("toy-shapes", "test")) == 256


def test_the_brightest_pixels_carry_the_class_colour():
    x, y = arrays(get_dataset("toy-shapes", "train", size=16, n=200))
    pix = x.reshape(len(x), 3, -1)
    brightest = pix[np.arange(len(x)), :, pix.sum(1).argmax(1)]          # (N, 3)
    nearest = np.linalg.norm(brightest[:, None, :] - PALETTE[None], axis=2).argmin(1)
    assert (nearest == y).mean() > 0.9


def test_bad_options():
    with pytest.raises(ConfigError, match="size must be >= 4"):
        get_dataset("toy-shapes", "train", size=2)
