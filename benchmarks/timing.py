"""Wall-clock timing: the variants of a case alternate call by call in one process, after a warm-up."""
from __future__ import annotations

import gc
import statistics
import time
from typing import Callable, Mapping

import torch

MIN_REPEATS = 3


def synchronizer(device: torch.device) -> Callable[[], None]:
    """``torch.<device type>.synchronize`` for ``device`` (waits for queued kernels; a no-op on the CPU)."""
    module = getattr(torch, device.type, None)
    sync = getattr(module, "synchronize", None)
    if sync is None:
        return lambda: None
    return lambda: sync(device) if device.type != "cpu" else sync()


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def repeats_within(budget_s: float, seconds_per_round: float, max_repeats: int) -> int:
    """How many rounds (one call of every variant each) fit in ``budget_s``, between ``min(3, max_repeats)`` and
    ``max_repeats``."""
    fitting = int(budget_s // max(seconds_per_round, 1e-9))
    return max(min(MIN_REPEATS, max_repeats), min(max_repeats, fitting))


def alternate(fns: Mapping[str, Callable[[], object]], repeats: int,
              sync: Callable[[], None]) -> dict[str, list[float]]:
    """Time ``repeats`` rounds; each round calls every function once, the order reversing from round to round so
    that neither variant always runs first (machine noise then hits both alike)."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    gc.collect()
    gc.disable()  # no collector pauses inside the timed calls
    try:
        for r in range(repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                times[name].append(timed(fns[name], sync))
    finally:
        gc.enable()
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))
