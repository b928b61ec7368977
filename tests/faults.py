"""Fault injection shared by the trainer tests."""
from __future__ import annotations

import os
import signal


def preempting(task_cls: type) -> type:
    """A subclass of ``task_cls`` that sends itself SIGTERM during global step ``at`` (as a cluster scheduler
    would), built as ``preempting(Task)(cfg, at)``."""

    class PreemptedAt(task_cls):
        def __init__(self, cfg, at: int):
            super().__init__(cfg)
            self.at = at

        def train_step(self, model, batch, ctx):
            if ctx.global_step == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().train_step(model, batch, ctx)

    PreemptedAt.__name__ = f"PreemptedAt{task_cls.__name__}"
    return PreemptedAt
