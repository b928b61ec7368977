"""FLOP counts (on the meta device: no compute) and the machine's measured matmul peak."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .timing import median, synchronizer, timed


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of the matmuls and convolutions (forward and backward) that ``fn`` runs, as
    ``torch.utils.flop_counter.FlopCounterMode`` counts them (2 per multiply-add); elementwise work is not counted."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def model_flops(build: Callable[[], nn.Module], input_shape: tuple[int, ...], train: bool) -> int:
    """FLOPs of one forward (``train=False``) or forward + backward (``train=True``, gradients of every parameter
    as in a training step) of the model ``build()`` returns, on an input of ``input_shape``; built and run on the
    meta device, so no memory is allocated and nothing is computed."""
    with torch.device("meta"):
        model = build()
        x = torch.empty(input_shape)
    model.train(train)

    def run() -> None:
        if train:
            model(x).float().sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return count_flops(run)


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
