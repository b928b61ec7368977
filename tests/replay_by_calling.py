"""A CPU stand-in for :class:`oe_core.run.cuda_graph.CudaGraph`, so that :class:`~oe_core.run.cuda_graph.StepGraph`'s
bookkeeping (warm-up, static buffers, shapes, fallback) and the steps written for capture are tested without a GPU."""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch.utils._pytree import tree_flatten


class ReplayByCalling:
    """CPU stand-in for :class:`CudaGraph` (tests): "capture" runs ``fn`` and keeps its outputs as the static ones;
    "replay" runs ``fn`` again on the static inputs and copies its outputs into them."""

    def __init__(self, device: torch.device):
        self.fn: Optional[Callable[[], Any]] = None
        self.out: Any = None
        self.captures = self.replays = 0

    def warmup(self, fn: Callable[[], Any]) -> Any:
        return fn()

    def capture(self, fn: Callable[[], Any]) -> Any:
        self.fn, self.captures = fn, self.captures + 1
        self.out = fn()
        return self.out

    def replay(self) -> None:
        assert self.fn is not None
        self.replays += 1
        fresh, _ = tree_flatten(self.fn())
        static, _ = tree_flatten(self.out)
        for s, f in zip(static, fresh):
            if isinstance(s, torch.Tensor):
                s.copy_(f)
