"""``--tensorboard``: the run's scalars as TensorBoard events in ``OUT/tensorboard`` (an optional dependency; the tags:
docs/usage.md).  A resumed run appends (steps after the last checkpoint appear twice).
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

INSTALL = 'pip install tensorboard (or pip install -e ".[tensorboard]")'


def check_tensorboard() -> None:
    """Fail before any work when ``--tensorboard`` is asked for but TensorBoard is missing."""
    try:
        found = find_spec("tensorboard") is not None
    except ValueError:  # import blocked (sys.modules["tensorboard"] is None)
        found = False
    if not found:
        raise ConfigError(f"--tensorboard needs the tensorboard package: {INSTALL}")


class ScalarLog:
    """TensorBoard scalars of one run (rank 0 only); a no-op when disabled."""

    def __init__(self, folder: Path, enabled: bool):
        self.writer: Optional[object] = None
        if enabled:
            check_tensorboard()
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))

    def step(self, global_step: int, loss: float, lr: float, logs: dict) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("step/loss", loss, global_step)
        self.writer.add_scalar("step/lr", lr, global_step)
        for k, v in logs.items():
            self.writer.add_scalar(f"step/{k}", float(v), global_step)

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(f"epoch/{k}", v, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
