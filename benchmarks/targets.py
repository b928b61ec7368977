"""The performance targets, checked against a results dict (the JSON the benchmark writes).

All ratios are the suite over its baseline (the pclucas14 port's own code for PixelCNN++), measured in the same
run.  The train-step targets depend on the precision of the run: float32 against the port's float32, and under
``--amp bf16`` the suite's bf16 against the port's float32 (meant for CPUs and GPUs with native bf16).  A target
whose case was not run has value ``None``.
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

SPEEDUP_TARGETS = {"none": {"train_small": 1.6, "train_paper": 1.4},   # float32 vs the port's float32
                   "bf16": {"train_small": 2.0, "train_paper": 2.5}}   # bf16 autocast vs the port's float32


def speedup_targets(amp: str) -> tuple[Target, ...]:
    need = SPEEDUP_TARGETS["bf16" if amp == "bf16" else "none"]
    what = {"train_small": "small-config", "train_paper": "paper-config"}
    return tuple(Target(f"{case}.speedup", f"{what[case]} train step{' (bf16)' if amp == 'bf16' else ''}: "
                        "images/s vs the port (float32)", _path("cases", case, "speedup"), ">=", need[case])
                 for case in ("train_small", "train_paper"))


TARGETS: tuple[Target, ...] = (
    Target("train_paper.peak_fraction", "paper-config train step: fraction of the matmul peak",
           _path("cases", "train_paper", "fast", "peak_fraction"), ">=", 0.6),
    Target("dmol_loss.speedup", "DMOL loss forward+backward: speed vs the port's loss",
           _path("cases", "dmol_loss", "speedup"), ">=", 3.0),
    Target("dmol_loss.memory_ratio", "DMOL loss forward+backward: peak memory / the port's",
           _path("cases", "dmol_loss", "memory_ratio"), "<=", 0.5),
    Target("score.vs_train", "bpd scoring images/s / paper train-step images/s", _score_vs_train, ">=", 3.0),
) + tuple(
    Target(f"{case}.memory_ratio", f"{case}: peak memory / baseline", _path("cases", case, "memory_ratio"), "<=",
           1.0)
    for case in MEMORY_CASES
) + (
    Target("linearity.batch.r2", "train-step time linear in batch size (R^2 of a line)",
           _path("linearity", "batch", "r2"), ">=", 0.99),
    Target("linearity.dataset.r2", "scoring time linear in data-set size (R^2 of a line)",
           _path("linearity", "dataset", "r2"), ">=", 0.99),
)


def check_targets(results: dict) -> list[dict]:
    amp = results.get("config", {}).get("amp", "none")
    return [t.check(results) for t in speedup_targets(amp) + TARGETS]
