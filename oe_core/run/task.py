"""What a trainer gives the engine: a :class:`Task` (datasets, model, optimizer, batches, the loss of one step,
evaluation), and what the engine gives a task's step: a :class:`StepContext` (device, distribution, precision,
position)."""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Iterable, Optional, Protocol

import torch
from torch import nn

from .config import RunConfig
from .device import DistInfo, autocast
from .release import ModelCard, final_metrics
from .seed import derive_seed


@dataclasses.dataclass
class StepContext:
    """What a task sees of the run: device, distribution, precision and position."""

    cfg: RunConfig
    device: torch.device
    dist: DistInfo
    epoch: int = 0
    step: int = 0          # step within the epoch
    global_step: int = 0

    def autocast(self):
        return autocast(self.device, self.cfg.amp)

    def generator(self, *keys: Any) -> torch.Generator:
        """A CPU generator seeded from ``(seed, keys, epoch, step)``: identical on every rank and on resume."""
        g = torch.Generator()
        g.manual_seed(derive_seed(self.cfg.seed, *keys, self.epoch, self.step))
        return g

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.cfg.channels_last else torch.contiguous_format


class StepUpdate(Protocol):
    """Work after every optimizer step (an EMA of the weights), in two halves so that a CUDA graph can capture the
    device half: ``advance()``, the host bookkeeping, runs before the step's device work; ``apply(model)`` is the
    device work, with no host values."""

    def advance(self) -> None: ...

    def apply(self, model: nn.Module) -> None: ...


class Task(abc.ABC):
    """What one kind of training is (the classifier and density trainers).  A ``train_step`` written for CUDA-graph
    capture says so with :func:`oe_core.run.cuda_graph.capturable`."""

    kind: str = ""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def setup(self, ctx: StepContext) -> None:
        """Build datasets and anything else that needs the device (called once, before the model)."""

    @abc.abstractmethod
    def build_model(self) -> nn.Module: ...

    @abc.abstractmethod
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer: ...

    def build_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int):
        return None

    @abc.abstractmethod
    def steps_per_epoch(self) -> int: ...

    @abc.abstractmethod
    def batches(self, epoch: int, start_step: int) -> Iterable:
        """This rank's batches of ``epoch``, starting at ``start_step`` (resume skips without loading data)."""

    @abc.abstractmethod
    def train_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> tuple[torch.Tensor, dict]:
        """Return ``(loss, logs)``; runs under autocast; the engine does backward and the optimizer step."""

    def step_update(self) -> Optional[StepUpdate]:
        """The update after every optimizer step (e.g. an EMA of the weights), or ``None``; asked once, after
        :meth:`build_optimizer` and the restore of a checkpoint."""
        return None

    def evaluate(self, model: nn.Module, ctx: StepContext) -> dict:
        """Per-epoch test metrics (CSV columns); called on rank 0 under ``torch.no_grad``."""
        return {}

    def eval_state_dict(self, model: nn.Module) -> Optional[dict]:
        """The weights to evaluate/score with (e.g. EMA); ``None`` means the model's own."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self, row: dict) -> str:
        return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())

    def model_card(self, state: dict) -> ModelCard:
        """The model card of a finished run (``state``: kind, config, model, eval_model, task, history)."""
        return ModelCard(f"{self.kind} model", "Trained with the OE study suite.", {"config": "config.json"},
                         final_metrics(state["history"], ()))
