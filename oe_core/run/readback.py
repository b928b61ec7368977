"""The per-step loss and logs of a run, kept on the device as one small float64 vector a step and read back in one
transfer every ``read_every`` steps (and before every checkpoint), instead of one host wait per step; the engine
adds them to its sums in step order, so the epoch means equal per-step reading bit for bit.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch


class StepRecord(NamedTuple):
    epoch: int           # 0-based
    step: int            # within the epoch
    global_step: int
    loss: float
    logs: dict
    lr: float


class StepReadback:
    """Steps waiting to be read back (see the module docstring)."""

    def __init__(self, every: int):
        if every < 1:
            raise ValueError(f"read_every must be >= 1, got {every}")
        self.every = every
        self._values: list[torch.Tensor] = []        # per step: [loss, tensor logs...] as float64, on the device
        self._meta: list[tuple] = []                  # per step: positions, log keys, tensor keys, host logs, lr

    def __len__(self) -> int:
        return len(self._meta)

    def add(self, epoch: int, step: int, global_step: int, loss: torch.Tensor, logs: dict, lr: float) -> None:
        """One finished step's loss (a 0-dim tensor) and logs (0-dim tensors or host numbers); no host wait.  The
        values are copied (a CUDA graph overwrites its outputs at the next replay)."""
        keys = [k for k, v in logs.items() if isinstance(v, torch.Tensor)]
        host = {k: float(v) for k, v in logs.items() if not isinstance(v, torch.Tensor)}
        parts = [loss.detach().reshape(())] + [logs[k].detach().reshape(()) for k in keys]
        self._values.append(torch.stack(parts).to(torch.float64))
        self._meta.append((epoch, step, global_step, list(logs), keys, host, lr))

    def due(self) -> bool:
        return len(self._meta) >= self.every

    def read(self) -> list[StepRecord]:
        """Every waiting step, in order, with host values (one device-to-host copy); empties the queue."""
        if not self._meta:
            return []
        rows: list[list[float]] = torch.stack(self._values).tolist()
        out = []
        for values, (epoch, step, global_step, order, keys, host, lr) in zip(rows, self._meta):
            read: dict[str, Any] = {**dict(zip(keys, values[1:])), **host}
            logs = {k: read[k] for k in order}                     # the task's order of its logs
            out.append(StepRecord(epoch, step, global_step, values[0], logs, lr))
        self._values, self._meta = [], []
        return out
