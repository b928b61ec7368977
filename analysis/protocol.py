"""The reference OOD evaluation protocol (``CIFAR/test.py``) as one function.

All ID test scores are used once; each of ``num_to_avg`` trials draws ``len(in_scores) // ratio`` OOD scores without
replacement (all of them when fewer are available), computes every metric of :func:`oe_core.metrics.ood_metrics`,
and the result is the trial mean with ``np.std`` (population, ``ddof=0``) as the spread, as in the reference.

Deliberate differences from the reference:

* Trials are seeded: trial ``t`` draws with ``numpy.random.default_rng((seed, t))``, so results are reproducible
  and the first ``k`` trials of a longer run equal a ``k``-trial run.  The reference redraws unseeded.
* The subsample has exactly ``len(in_scores) // ratio`` scores.  The reference takes whole test batches of 200 and
  stops after ``n // 200`` of them (5,200 rather than 5,206 for SVHN's ``26,032 // 5``; the same for CIFAR).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oe_core.errors import OEError
from oe_core.metrics import as_scores, ood_metrics


@dataclass(frozen=True)
class ProtocolResult:
    """Per-trial metric values (fractions) and their mean/std; ``result[metric] -> (mean, std)``."""

    trials: dict[str, np.ndarray]
    n_in: int
    n_out: int            # OOD scores available
    n_out_per_trial: int  # OOD scores used in each trial
    num_to_avg: int
    ratio: int
    seed: int
    rule: str
    tpr: float
    mean: dict[str, float] = field(init=False)
    std: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", {k: float(np.mean(v)) for k, v in self.trials.items()})
        object.__setattr__(self, "std", {k: float(np.std(v)) for k, v in self.trials.items()})

    def __getitem__(self, metric: str) -> tuple[float, float]:
        if metric not in self.trials:
            raise OEError(f"no metric {metric!r}; metrics: {', '.join(self.trials)}")
        return self.mean[metric], self.std[metric]

    def summary(self) -> dict[str, tuple[float, float]]:
        """``{metric: (mean, std)}``."""
        return {k: self[k] for k in self.trials}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: sizes, settings, mean, std and the per-trial values."""
        return {"n_in": self.n_in, "n_out": self.n_out, "n_out_per_trial": self.n_out_per_trial,
                "num_to_avg": self.num_to_avg, "ratio": self.ratio, "seed": self.seed, "rule": self.rule,
                "tpr": self.tpr, "mean": dict(self.mean), "std": dict(self.std),
                "trials": {k: [float(x) for x in v] for k, v in self.trials.items()}}


def trial_subsample(n_out: int, size: int, seed: int, trial: int) -> np.ndarray:
    """Indices (sorted) of the OOD scores used in ``trial``: ``size`` of ``range(n_out)`` drawn
    without replacement, or all of them when ``n_out <= size``."""
    if n_out <= size:
        return np.arange(n_out)
    rng = np.random.default_rng((seed, trial))
    return np.sort(rng.choice(n_out, size=size, replace=False))


def evaluate_protocol(in_scores: Any, out_scores: Any, num_to_avg: int = 10, ratio: int = 5,
                      seed: int = 0, rule: str = "closest", tpr: float = 0.95) -> ProtocolResult:
    """Run the reference protocol on per-image scores (higher = more anomalous, OOD positive)."""
    s_in = as_scores(in_scores, "in_scores")
    s_out = as_scores(out_scores, "out_scores")
    if int(num_to_avg) < 1:
        raise OEError(f"num_to_avg must be >= 1, got {num_to_avg}")
    if int(ratio) < 1:
        raise OEError(f"ratio must be >= 1, got {ratio}")
    size = s_in.size // int(ratio)
    if size < 1:
        raise OEError(f"{s_in.size} ID scores with ratio {ratio} leave no OOD scores per trial")
    per_trial = [ood_metrics(s_in, s_out[trial_subsample(s_out.size, size, seed, t)], tpr=tpr, rule=rule)
                 for t in range(int(num_to_avg))]
    trials = {k: np.array([m[k] for m in per_trial]) for k in per_trial[0]}
    return ProtocolResult(trials=trials, n_in=s_in.size, n_out=s_out.size,
                          n_out_per_trial=min(size, s_out.size), num_to_avg=int(num_to_avg),
                          ratio=int(ratio), seed=int(seed), rule=rule, tpr=float(tpr))
