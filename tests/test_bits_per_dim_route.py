"""One route to bits/dim: :class:`density_oe.scorer.Scorer` (behind ``density_oe.score``) and the ``bpd``
detector give the same numbers, bit for bit, and both equal ``-log p(x) / (C H W ln 2)`` computed here from the
model's log-likelihood."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from density_oe.detectors import BitsPerDim
from density_oe.glow import Glow, GlowConfig
from density_oe.pixelcnn import PixelCNNConfig, PixelCNNpp
from density_oe.scorer import Scorer, score_dataset
from oe_core.data import to_unit_range
from oe_core.detectors import get_detector


def _images(n: int = 6, side: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)


def _models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"pixelcnn": PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=4, nr_logistic_mix=2, dropout=0.0)),
            "glow": Glow(GlowConfig(glow_levels=2, glow_steps=1, glow_hidden=4))}


def _by_hand(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """-log p(x) / (D ln 2), D = 3 * 8 * 8, from the model's own log-likelihood in nats."""
    with torch.no_grad():
        nats = model.eval().log_prob(to_unit_range(x)).double()
    return (-nats / (3 * 8 * 8 * math.log(2.0))).numpy()


@pytest.mark.parametrize("family", ["pixelcnn", "glow"])
def test_scorer_and_bpd_detector_are_one_route(family):
    model = _models()[family]
    x = _images()
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=4)   # a full batch and a partial one
    scored = score_dataset(model, loader, torch.device("cpu"))
    detected = BitsPerDim(model).predict(to_unit_range(x))
    assert scored.dtype == np.float64 and detected.dtype == torch.float64
    np.testing.assert_array_equal(scored, detected.numpy())
    np.testing.assert_array_equal(scored, _by_hand(model, x))
    assert get_detector("bpd").build(model).predict(to_unit_range(x)).equal(detected)


def test_scorer_batch_matches_the_detector_one_batch_at_a_time():
    model = _models()["pixelcnn"]
    x = _images(3)
    with Scorer(model, torch.device("cpu")) as scorer:
        batch = scorer.batch(x)
    assert batch.dtype == torch.float64
    torch.testing.assert_close(batch, BitsPerDim(model).predict(to_unit_range(x)), rtol=0, atol=0)


def test_a_single_image_batch():
    """D is the size of one image, also for a batch of one (``x[1].numel()`` would fail here, ``x.numel()`` differ
    only for batches of two or more)."""
    model = _models()["pixelcnn"]
    x = _images(1)
    np.testing.assert_array_equal(BitsPerDim(model).predict(to_unit_range(x)).numpy(), _by_hand(model, x))


class _CountingModel(torch.nn.Module):
    """A density model whose ``log_prob`` reads the forward output it is given (as every family does)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.forwards = 0

    def forward(self, x):
        self.forwards += 1
        return x * self.scale

    def log_prob(self, x, out=None):
        out = self(x) if out is None else out
        return -(out ** 2).flatten(1).sum(1)


def test_the_scorer_runs_the_network_once_per_batch_and_hands_its_output_to_log_prob():
    model = _CountingModel()
    x = _images(6)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=4)
    scored = score_dataset(model, loader, torch.device("cpu"))
    assert model.forwards == 2
    v = to_unit_range(x).double() * 0.5
    np.testing.assert_allclose(scored, ((v ** 2).flatten(1).sum(1) / (3 * 8 * 8 * math.log(2.0))).numpy(), rtol=1e-6)
