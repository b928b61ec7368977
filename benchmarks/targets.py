"""The issue's performance targets, checked against a results dict (the JSON the benchmark writes).

All ratios are fast over plain, measured in the same run.  A target whose case was not run has value ``None``.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Optional

OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


def _get(results: dict, *path: str) -> Optional[float]:
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node or node[key] is None:
            return None
        node = node[key]
    return float(node)


def _score_vs_train(results: dict) -> Optional[float]:
    score = _get(results, "cases", "score", "fast", "images_per_s")
    train = _get(results, "cases", "train_paper", "fast", "images_per_s")
    return None if score is None or train is None else score / train


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    value: Callable[[dict], Optional[float]]
    op: str
    threshold: float

    def check(self, results: dict) -> dict:
        value = self.value(results)
        met = None if value is None else OPS[self.op](value, self.threshold)
        return {"name": self.name, "text": self.text, "value": value, "op": self.op, "threshold": self.threshold,
                "met": met}


def _path(*path: str) -> Callable[[dict], Optional[float]]:
    return lambda results: _get(results, *path)


MEMORY_CASES = ("train_small", "train_paper", "oe_step", "score", "wrn_oe_step")

TARGETS: tuple[Target, ...] = (
    Target("train_small.speedup", "small-config train step: images/s vs plain",
           _path("cases", "train_small", "speedup"), ">=", 2.0),
    Target("train_paper.speedup", "paper-config train step: images/s vs plain",
           _path("cases", "train_paper", "speedup"), ">=", 1.2),
    Target("train_paper.peak_fraction", "paper-config train step: fraction of the matmul peak",
           _path("cases", "train_paper", "fast", "peak_fraction"), ">=", 0.6),
    Target("dmol_loss.speedup", "DMOL loss forward+backward: speed vs plain",
           _path("cases", "dmol_loss", "speedup"), ">=", 3.0),
    Target("dmol_loss.memory_ratio", "DMOL loss forward+backward: peak memory / plain",
           _path("cases", "dmol_loss", "memory_ratio"), "<=", 0.5),
    Target("score.vs_train", "bpd scoring images/s / paper train-step images/s", _score_vs_train, ">=", 3.0),
) + tuple(
    Target(f"{case}.memory_ratio", f"{case}: peak memory / plain", _path("cases", case, "memory_ratio"), "<=", 1.0)
    for case in MEMORY_CASES
) + (
    Target("linearity.batch.r2", "train-step time linear in batch size (R^2 of a line)",
           _path("linearity", "batch", "r2"), ">=", 0.99),
    Target("linearity.dataset.r2", "scoring time linear in data-set size (R^2 of a line)",
           _path("linearity", "dataset", "r2"), ">=", 0.99),
)


def check_targets(results: dict) -> list[dict]:
    return [t.check(results) for t in TARGETS]
