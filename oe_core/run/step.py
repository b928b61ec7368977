"""One optimizer step, as the engine's loop calls it: ``step(batch, ctx, forward) -> (loss, logs)``, where
``forward(batch)`` is the task's ``train_step`` (docs/architecture.md, "The training loop").  The loss comes back as
a device tensor, or ``None`` when ``--on-nonfinite skip`` dropped the batch before the update.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import nn

from .task import StepContext, StepUpdate

Forward = Callable[[Any], "tuple[torch.Tensor, dict]"]


class EagerStep:
    """The step as written: ``forward`` under autocast, backward, optimizer step, schedule, update."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 update: Optional[StepUpdate], skip_nonfinite: bool = False):
        self.model, self.optimizer, self.scheduler, self.update = model, optimizer, scheduler, update
        self.skip_nonfinite = skip_nonfinite     # needs the host value of every loss before its update

    def __call__(self, batch: Any, ctx: StepContext, forward: Forward) -> tuple[Optional[torch.Tensor], dict]:
        with ctx.autocast():
            loss, logs = forward(batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.skip_nonfinite and not math.isfinite(float(loss.detach())):
            return None, logs
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.update is not None:
            self.update.advance()
            self.update.apply(self.model)
        return loss, logs

    def epoch_info(self) -> dict:
        """Columns this runner adds to the epoch's row (none)."""
        return {}
