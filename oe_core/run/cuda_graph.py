"""Whole-step CUDA graphs: a fixed-shape step (a whole train step, or a scoring forward) captured once and replayed.

:class:`StepGraph` wraps ``fn(*tensors) -> outputs``: ``warmup`` eager calls, one capture on static device buffers,
then replays, whose outputs are the graph's static tensors (overwritten by the next call); another shape (a last
partial batch) runs eagerly, and a failed capture warns once and runs eagerly from then on.  ``fn`` must not
synchronise with the host (``.item()``) or use CPU tensors, must hold every value that changes between steps in a
device tensor updated in place outside the graph (:class:`TensorLR`, ``StepUpdate.advance()``), and draws random
numbers from the default CUDA generator only.  Capture and its CPU tests: docs/architecture.md, "CUDA graphs".
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, Optional, TypeVar

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from .step import Forward
from .task import StepContext, StepUpdate

F = TypeVar("F", bound=Callable)

CHOICES = ("auto", "on", "off")
CAPTURE_ERROR_MODE = "thread_local"   # "global" loses to the DataLoader's pin-memory thread (docs/architecture.md)


class CudaGraph:
    """``torch.cuda.CUDAGraph`` behind the :class:`StepGraph` interface: warm-up and capture on one side stream,
    capture in ``thread_local`` error mode inside an outer stream context."""

    def __init__(self, device: torch.device):
        self.device = device
        self.graph = torch.cuda.CUDAGraph()
        self.stream = torch.cuda.Stream(device)

    def warmup(self, fn: Callable[[], Any]) -> Any:
        """An eager call on the side stream (as the PyTorch docs warm up before capture)."""
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        with torch.cuda.stream(self.stream):
            out = fn()
        caller.wait_stream(self.stream)
        return out

    def capture(self, fn: Callable[[], Any]) -> Any:
        """Capture ``fn``, replay it once (capturing runs nothing) and return its static outputs.  On any failure the
        caller's stream is current again, the graph and its memory pool are released, and the error is raised."""
        caller = torch.cuda.current_stream(self.device)
        torch.cuda.synchronize(self.device)
        try:
            with torch.cuda.stream(self.stream):        # restores `caller` even when capture_end raises
                with torch.cuda.graph(self.graph, stream=self.stream, capture_error_mode=CAPTURE_ERROR_MODE):
                    out = fn()
        except BaseException:
            self.graph.reset()                          # ends the pool routing, releases the private pool
            torch.cuda.synchronize(self.device)
            raise
        caller.wait_stream(self.stream)
        self.graph.replay()
        return out

    def replay(self) -> None:
        self.graph.replay()


BACKENDS: dict[str, type] = {"cuda": CudaGraph}     # device type -> graph class


def _signature(tree: Any) -> list:
    """What a captured graph fixes of its inputs: each tensor's shape and dtype (not its device: host batches are
    copied into the device buffers), and every other leaf as it is."""
    leaves, _ = tree_flatten(tree)
    return [(t.shape, t.dtype) if isinstance(t, torch.Tensor) else t for t in leaves]


class StepGraph:
    """``fn`` captured as one graph after ``warmup`` eager calls (the module docstring says what ``fn`` must
    respect)."""

    def __init__(self, fn: Callable[..., Any], device: torch.device, warmup: int = 3, name: str = "step",
                 backend: Optional[type] = None):
        self.fn, self.device, self.warmup, self.name = fn, device, warmup, name
        self.backend = backend or BACKENDS.get(device.type)
        self.calls = 0
        self.graph: Any = None
        self._runner: Any = None                  # the backend instance (warm-up stream, then the graph)
        self.static_in: Any = None                # the graph's input and output buffers
        self.static_out: Any = None
        self._signature: Optional[list] = None
        self.failed: Optional[str] = None if self.backend is not None else f"no CUDA graphs on {device.type}"

    @property
    def status(self) -> str:
        """``captured``, ``warming up`` (no capture attempted yet) or ``eager: <why>`` (failed or unavailable)."""
        if self.graph is not None:
            return "captured"
        return f"eager: {self.failed}" if self.failed is not None else "warming up"

    def _on_device(self, inputs: tuple) -> tuple:
        return tree_map(lambda x: x.to(self.device, non_blocking=True) if isinstance(x, torch.Tensor) else x,
                        inputs)

    def __call__(self, *inputs: Any) -> Any:
        if self.failed is not None:
            return self.fn(*self._on_device(inputs))
        self.calls += 1
        if self.graph is None:
            if self._runner is None:
                self._runner = self.backend(self.device)
            if self.calls <= self.warmup:
                device_inputs = self._on_device(inputs)
                return self._runner.warmup(lambda: self.fn(*device_inputs))
            return self._capture(inputs)
        if _signature(inputs) != self._signature:
            return self.fn(*self._on_device(inputs))      # e.g. a last partial batch: eager
        # one copy per tensor, host (pinned) or device -> static buffer
        tree_map(lambda s, x: s.copy_(x, non_blocking=True) if isinstance(s, torch.Tensor) else None,
                 self.static_in, inputs)
        self.graph.replay()
        return self.static_out

    def _capture(self, inputs: tuple) -> Any:
        self._signature = _signature(inputs)
        self.static_in = tree_map(lambda x: torch.empty_like(x, device=self.device).copy_(x)
                                  if isinstance(x, torch.Tensor) else x, inputs)
        runner = self._runner
        try:
            self.static_out = runner.capture(lambda: self.fn(*self.static_in))
        except Exception as e:  # an op that cannot be captured, a host sync, ... (the runner has cleaned up)
            self.failed = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            self.static_in = self.static_out = self._runner = None
            warnings.warn(f"CUDA graph capture of the {self.name} failed ({self.failed}); running it eagerly",
                          stacklevel=3)
            return self.fn(*self._on_device(inputs))
        self.graph = runner
        return self.static_out


def resolve_cuda_graphs(choice: str, device: torch.device, why_not: Optional[str] = None) -> bool:
    """Whether to capture: ``auto`` where the device has CUDA graphs and ``why_not`` (e.g. DDP) does not rule them
    out; ``on`` the same, warning once where they cannot be used; ``off`` never."""
    if choice not in CHOICES:
        raise ValueError(f"cuda_graphs must be one of {CHOICES}, got {choice!r}")
    if choice == "off":
        return False
    reason = why_not or (None if device.type in BACKENDS else f"they need a CUDA device, not {device.type}")
    if reason is None:
        return True
    if choice == "on":
        warnings.warn(f"--cuda-graphs on: CUDA graphs are not used ({reason}); running eagerly", stacklevel=2)
    return False


class TensorLR:
    """The learning rates of ``optimizer`` mirrored in 0-dim float32 device tensors, so a captured step reads the
    current rate at every replay: :meth:`sync` copies the groups' floats in before each step (outside the graph),
    :meth:`for_step` puts the tensors in the groups for the step."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device):
        self.optimizer = optimizer
        self.tensors = [torch.tensor(float(g["lr"]), dtype=torch.float32, device=device)
                        for g in optimizer.param_groups]
        # the eager warm-up steps run with capturable=True too (see for_step): no warning about it
        optimizer._warned_capturable_if_run_uncaptured = True

    def sync(self) -> None:
        for t, group in zip(self.tensors, self.optimizer.param_groups):
            t.fill_(float(group["lr"]))

    @contextlib.contextmanager
    def for_step(self) -> Iterator[None]:
        """The optimizer step with the tensor learning rates and ``capturable=True`` (which ``step()`` demands
        under capture, also for fused Adam); both restored afterwards, so state dicts keep floats."""
        groups = self.optimizer.param_groups
        saved = [(g["lr"], g.get("capturable", False)) for g in groups]
        for t, g in zip(self.tensors, groups):
            g["lr"], g["capturable"] = t, True
        try:
            yield
        finally:
            for (lr, capturable), g in zip(saved, groups):
                g["lr"], g["capturable"] = lr, capturable


def capturable(train_step: F) -> F:
    """Marks a task's ``train_step`` as written for capture (what :class:`StepGraph` needs of ``fn``; its logs are
    device tensors); the engine may then run the whole step as one CUDA graph.  An override of a marked
    ``train_step`` is not marked unless it says so."""
    train_step.capturable = True  # type: ignore[attr-defined]
    return train_step


def why_not_captured(train_step: Callable, kind: str, ddp: bool, on_nonfinite: str) -> Optional[str]:
    """Why a run cannot capture its train step (a ``kind`` task's) as a CUDA graph (``None``: it can)."""
    if not getattr(train_step, "capturable", False):
        return f"the {kind} trainer's step is not written for capture"
    if ddp:
        return "not under DDP"
    if on_nonfinite != "stop":
        return "--on-nonfinite skip needs the loss on the host before the update"
    return None


class CapturedStep:
    """The step runner (:mod:`.step`) that captures forward, loss, backward, optimizer step and the device half of
    the task's update as one graph; outside it, before each replay the learning rate and the update's host half,
    after it the schedule.  ``forward`` must be the same computation at every step."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 update: Optional[StepUpdate], device: torch.device, name: str = "train step"):
        self.model, self.optimizer, self.scheduler, self.update = model, optimizer, scheduler, update
        self.device, self.name = device, name
        self.lrs = TensorLR(optimizer, device)
        self.graph: Optional[StepGraph] = None

    def _whole_step(self, ctx: StepContext, forward: Forward) -> Callable:
        def whole_step(batch):      # no host synchronisation: the loss and logs stay device tensors
            self.optimizer.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss, logs = forward(batch)
            loss.backward()
            with self.lrs.for_step():
                self.optimizer.step()
            if self.update is not None:
                self.update.apply(self.model)
            return loss.detach(), logs
        return whole_step

    def __call__(self, batch: Any, ctx: StepContext, forward: Forward) -> tuple[torch.Tensor, dict]:
        if self.graph is None:
            self.graph = StepGraph(self._whole_step(ctx, forward), self.device, name=self.name)
        self.lrs.sync()
        if self.update is not None:
            self.update.advance()
        loss, logs = self.graph(batch)       # copies the host batch straight into the graph's static buffers
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, logs

    def epoch_info(self) -> dict:
        """Runs that try to capture say whether they did: ``captured`` or ``eager: <why>``."""
        return {"cuda_graph": self.graph.status if self.graph is not None else "warming up"}
