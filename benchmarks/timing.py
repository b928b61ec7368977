"""Wall-clock timing: the variants of a case alternate call by call in one process, after a warm-up."""
from __future__ import annotations

import gc
import math
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


def alternate(fns: Mapping[str, Callable[[], object]], sync: Callable[[], None], max_repeats: int,
              budget_s: float = math.inf) -> dict[str, list[float]]:
    """Time rounds of calls; each round calls every function once, the order reversing from round to round so
    that neither always runs first (machine noise then hits all alike).

    Runs ``max_repeats`` rounds, or stops earlier -- but never before ``min(3, max_repeats)`` rounds -- when one
    more round, as fast as the fastest so far, would take the total past ``budget_s``.
    """
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    least = min(MIN_REPEATS, max_repeats)
    spent, fastest_round = 0.0, math.inf
    gc.collect()
    gc.disable()  # no collector pauses inside the timed calls
    try:
        for r in range(max_repeats):
            if r >= least and spent + fastest_round > budget_s:
                break
            round_s = 0.0
            for name in names if r % 2 == 0 else names[::-1]:
                t = timed(fns[name], sync)
                times[name].append(t)
                round_s += t
            spent += round_s
            fastest_round = min(fastest_round, round_s)
    finally:
        gc.enable()
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))
