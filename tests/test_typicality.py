"""The typicality test (Nalisnick et al. 2019): single-image and batch forms, on synthetic NLLs with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from density_oe.typicality import BATCH_SIZES, entropy_estimate, typicality_scores
from oe_core.detectors import DETECTORS, get_detector
from oe_core.errors import OEError
from oe_core.metrics import auroc


def test_scores_are_the_distance_of_the_group_mean_to_the_entropy_estimate():
    nll = torch.tensor([1.0, 2.0, 3.0, 6.0])
    h = entropy_estimate(torch.tensor([2.0, 4.0]))
    assert h == 3.0
    assert typicality_scores(nll, h).tolist() == [2.0, 1.0, 0.0, 3.0]             # |nll - H|
    assert typicality_scores(nll, h, m=2).tolist() == [1.5, 1.5, 1.5, 1.5]         # |1.5 - 3|, |4.5 - 3|
    assert typicality_scores(nll, h, m=3).tolist() == [1.0, 1.0, 1.0, 3.0]         # last group: its own size
    assert typicality_scores(nll, h, m=4).tolist() == [0.0] * 4
    assert typicality_scores(nll, h).dtype == torch.float64
    with pytest.raises(ValueError, match="M must be >= 1"):
        typicality_scores(nll, h, m=0)
    with pytest.raises(ValueError, match="at least one"):
        entropy_estimate(torch.tensor([]))


def test_too_likely_outliers_fool_the_likelihood_but_not_the_typicality_test():
    g = torch.Generator().manual_seed(0)
    train = 3.0 + 0.2 * torch.randn(2000, generator=g, dtype=torch.float64)
    test_in = 3.0 + 0.2 * torch.randn(1000, generator=g, dtype=torch.float64)
    ood = 2.4 + 0.2 * torch.randn(1000, generator=g, dtype=torch.float64)        # SVHN under CIFAR-10: *more* likely
    h = entropy_estimate(train)
    assert h == pytest.approx(3.0, abs=0.02)
    assert auroc(test_in.numpy(), ood.numpy()) < 0.05                              # the NLL score fails
    t_in, t_out = typicality_scores(test_in, h).numpy(), typicality_scores(ood, h).numpy()
    assert auroc(t_in, t_out) > 0.95
    too_unlikely = 3.6 + 0.2 * torch.randn(1000, generator=g, dtype=torch.float64)  # both tails are flagged
    assert auroc(t_in, typicality_scores(too_unlikely, h).numpy()) > 0.95


def test_batch_form_separates_overlapping_distributions_as_its_size_grows():
    g = torch.Generator().manual_seed(1)
    h = 3.0
    test_in = 3.0 + torch.randn(4000, generator=g, dtype=torch.float64)
    ood = 2.5 + torch.randn(4000, generator=g, dtype=torch.float64)
    aurocs = {m: auroc(typicality_scores(test_in, h, m).numpy(), typicality_scores(ood, h, m).numpy())
              for m in (1, 10, 50)}
    # M = 1: |N(0,1)| vs |N(-0.5,1)|, AUROC 0.538 (computed below).  Batch means have std 1/sqrt(M): M = 50 puts the OOD mean
    # 3.5 standard deviations from H, so nearly every OOD batch scores above nearly every ID batch.
    assert 0.5 < aurocs[1] < 0.65 < aurocs[10] < aurocs[50]
    assert aurocs[50] > 0.97
    expected_m1 = _abs_normal_auroc(0.5)
    assert aurocs[1] == pytest.approx(expected_m1, abs=0.02)


def _abs_normal_auroc(shift: float) -> float:
    """P(|Y| > |X|) for X ~ N(0, 1), Y ~ N(shift, 1), by numerical integration (the known answer for M = 1)."""
    x = np.linspace(-8, 8, 4001)
    pdf_x = np.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
    cdf = lambda t: 0.5 * (1 + np.vectorize(math.erf)(t / math.sqrt(2)))  # noqa: E731
    p_y_within = cdf(np.abs(x) - shift) - cdf(-np.abs(x) - shift)          # P(|Y| <= |x|)
    return float(np.trapezoid(pdf_x * (1 - p_y_within), x))


class FirstPixelDensity(torch.nn.Module):
    """A stand-in density model whose bits/dim is the image's first value: log p(x) = -x[0,0,0] D ln 2."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -x[:, 0, 0, 0].double() * x[0].numel() * math.log(2)


def _batch(*values: float) -> torch.Tensor:
    x = torch.zeros(len(values), 3, 2, 2)
    x[:, 0, 0, 0] = torch.tensor(values)
    return x


def test_typicality_detectors_are_registered_fitted_and_score_known_values():
    entry = get_detector("typicality")
    assert entry.kind == "density" and entry.needs_fit
    det = entry.build(FirstPixelDensity())
    with pytest.raises(OEError, match="before fit"):
        det.predict(_batch(1.0))
    det.fit([(_batch(1.0), None), (_batch(3.0, 2.0), None)])                  # H = mean(1, 3, 2) = 2
    assert det.entropy == pytest.approx(2.0)
    assert det.predict(_batch(0.0, 2.0, 5.0)).tolist() == [2.0, 0.0, 3.0]
    batch = get_detector("typicality_m2").build(FirstPixelDensity()).fit([(_batch(1.0, 3.0), None)])
    assert batch.predict(_batch(0.0, 2.0, 5.0)).tolist() == [1.0, 1.0, 3.0]     # |1 - 2|, |5 - 2|
    assert {f"typicality_m{m}" for m in BATCH_SIZES} <= set(DETECTORS.names())
