"""The reference's per-step cosine learning-rate schedule."""
from __future__ import annotations

import math

import torch


def cosine_lr(step: int, total_steps: int, lr_max: float, lr_min: float) -> float:
    """``lr_min + (lr_max - lr_min) * (1 + cos(pi * step / total_steps)) / 2``."""
    return lr_min + (lr_max - lr_min) * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def reference_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, lr_max: float,
                               lr_min: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay from ``lr_max`` to ``lr_min`` (absolute) over ``total_steps`` optimizer steps.

    Replicates the reference exactly, including its order quirk: the reference
    calls ``scheduler.step()`` *before* ``optimizer.step()``, so optimizer step ``t``
    (0-based) uses ``cosine_lr(t + 1)`` and the last step uses ``lr_min``.  The
    engine steps the scheduler after the optimizer, hence the ``+ 1`` here.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_lr(step + 1, total_steps, lr_max, lr_min) / lr_max)
