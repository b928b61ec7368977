"""A tiny Task for engine tests: a dropout MLP on a fixed random regression-free classification problem.

Also runnable as a CLI (``python tests/engine_toy.py --out DIR``) so tests can kill it with signals.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from oe_core.cli_config import help_field, parse_config  # noqa: E402
from oe_core.errors import cli_main  # noqa: E402
from oe_core.run import Engine, RunConfig, Task, derive_seed  # noqa: E402


@dataclass
class ToyConfig(RunConfig):
    epochs: int = help_field(3, "epochs")
    lr: float = help_field(0.1, "learning rate")
    n: int = help_field(96, "examples")
    batch_size: int = help_field(16, "batch")
    nan_at: int = help_field(-1, "global step whose loss is made NaN (fault injection)")
    sleep: float = help_field(0.0, "seconds to sleep per step (so tests can signal mid-run)")
    signal_at: int = help_field(-1, "global step at which the task sends itself SIGTERM")


class ToyTask(Task):
    kind = "toy"

    def setup(self, ctx):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(self.cfg.n, 8, generator=g)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()

    def build_model(self):
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def build_optimizer(self, model):
        return torch.optim.SGD(model.parameters(), lr=self.cfg.lr, momentum=0.9, nesterov=True)

    def build_scheduler(self, optimizer, total_steps):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)

    def steps_per_epoch(self):
        return self.cfg.n // self.cfg.batch_size

    def batches(self, epoch, start_step):
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "order", epoch))
        perm = torch.randperm(self.cfg.n, generator=g)
        b = self.cfg.batch_size
        for s in range(start_step, self.steps_per_epoch()):
            idx = perm[s * b:(s + 1) * b]
            yield self.x[idx], self.y[idx]

    def train_step(self, model, batch, ctx):
        if ctx.global_step == self.cfg.signal_at:
            os.kill(os.getpid(), 15)
        if self.cfg.sleep:
            time.sleep(self.cfg.sleep)
        x, y = (ctx.to_device(t) for t in batch)
        loss = nn.functional.cross_entropy(model(x), y)
        if ctx.global_step == self.cfg.nan_at:
            loss = loss * float("nan")
        return loss, {"acc": (model(x).argmax(1) == y).float().mean().item()}

    def evaluate(self, model, ctx):
        return {"test_error": (model(self.x).argmax(1) != self.y).float().mean().item()}


def main(argv=None):
    Engine(ToyTask(parse_config(ToyConfig, argv))).run()


if __name__ == "__main__":
    sys.exit(cli_main(main))
