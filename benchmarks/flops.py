"""FLOP counting and the machine's measured matmul peak."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .timing import median, synchronizer, timed


def flop_counter() -> FlopCounterMode:
    """A ``torch.utils.flop_counter.FlopCounterMode`` (``with counter: ...``, then ``counter.get_total_flops()``):
    counts the floating-point operations of matmuls and convolutions, forward and backward (2 per multiply-add);
    elementwise work is not counted."""
    return FlopCounterMode(display=False)


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...], repeats: int = 5) -> dict:
    """The best median rate (GFLOP/s) of square ``n x n`` matmuls over ``sizes``, with the current thread count."""
    sync = synchronizer(device)
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(2):
            torch.mm(a, b)
        seconds = median([timed(lambda: torch.mm(a, b), sync) for _ in range(repeats)])
        by_size[str(n)] = 2.0 * n ** 3 / seconds / 1e9
    return {"dtype": str(dtype).replace("torch.", ""), "gflops": max(by_size.values()), "by_size": by_size}
