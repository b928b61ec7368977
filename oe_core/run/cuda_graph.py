"""Whole-step CUDA graphs: a fixed-shape step (forward, loss, backward, optimizer step, EMA update; or a scoring
forward) captured once and replayed, so that one step costs one graph launch instead of thousands of kernel
launches from Python (where the PixelCNN++ step is host-bound: docs/performance.md, "GPU").

:class:`StepGraph` wraps ``fn(*tensors) -> outputs``, as the PyTorch docs' "whole-network capture" does it:

1. the first ``warmup`` calls run ``fn`` eagerly (on a side stream on CUDA); they are real steps;
2. the next call captures ``fn`` on static input buffers on the device, then replays the graph once (capturing
   executes nothing) -- also a real step;
3. every later call copies its inputs straight into the static buffers (one copy per tensor: a pinned host batch
   goes host -> static buffer with ``non_blocking``, never through a temporary device tensor) and replays.  The
   outputs are the graph's static tensors, overwritten by the next call.

Inputs may be on the host or on the device: eager calls (warm-up, fallback, a shape that differs from the captured
one, e.g. a last partial batch) move them to the device first.  If capture fails, one warning says why and every
call runs eagerly from then on.  What ``fn`` must respect (else capture fails or, worse, replays stale values): no
host synchronisation (``.item()``, ``float(t)``, printing tensors), no CPU tensors, every value that changes
between steps held in a device tensor updated in place outside the graph (the learning rate: :class:`TensorLR`;
the density trainer's EMA weight), and random numbers from the default CUDA generator (dropout),
which graphs support: each replay draws fresh numbers from the generator's current seed and offset.

Capture, as torch 2.14's ``torch/cuda/graphs.py`` does it, and what :class:`CudaGraph` adds:

* ``torch.cuda.graph.__enter__`` synchronises, empties the device cache and the pinned-host cache
  (``torch._C._host_emptyCache``), enters its stream context, then ``capture_begin``.  In the default ``"global"``
  capture error mode a CUDA call from any other host thread -- the DataLoader's pin-memory thread allocating
  pinned memory for the next batch (its cache was just emptied) -- is refused and invalidates the capture, and the
  loader re-raises the error at the next batch (PyTorch #175425, LibreYOLO PR #681).  :class:`CudaGraph`
  captures in ``"thread_local"`` mode: only the capturing thread is restricted; the pin-memory thread touches only
  its own pinned buffers, nothing of the capture stream.
* ``torch.cuda.graph.__exit__`` calls ``capture_end()`` *before* it leaves its stream context: when the capture
  was invalidated, ``capture_end`` raises and the thread stays on the capture stream.  :class:`CudaGraph` enters
  the same stream in an outer ``torch.cuda.stream`` context of its own, whose exit restores the caller's stream
  whatever the inner exit did, and then ``reset()`` s the graph, which (torch 2.14 ``CUDAGraph.h``:
  ``capturing_to_pool_``, ``allocated_pool_``) ends the allocator's routing into the graph's private pool and
  releases it.

The CUDA specifics sit in :class:`CudaGraph`; :class:`ReplayByCalling` is a stand-in with the same interface that
"replays" by calling ``fn`` again, so the bookkeeping (warm-up, static buffers, shapes, fallback) and the step
functions written for capture are tested on CPUs (``tests/test_cuda_graph.py`` also runs :class:`CudaGraph` itself
against a fake ``torch.cuda`` that fails the way torch's does).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, Optional

import torch
from torch.utils._pytree import tree_flatten, tree_map

CHOICES = ("auto", "on", "off")


CAPTURE_ERROR_MODE = "thread_local"   # see the module docstring: "global" loses to the pin-memory thread


class CudaGraph:
    """``torch.cuda.CUDAGraph`` behind the :class:`StepGraph` interface: warm-up and capture on one side stream,
    capture in ``thread_local`` error mode inside an outer stream context (see the module docstring)."""

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
        """Capture ``fn``, replay it once (capturing runs nothing) and return its static outputs.  On any failure
        the caller's stream is current again, the graph and its private memory pool are released, and the error
        is raised."""
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


BACKENDS: dict[str, type] = {"cuda": CudaGraph}


def graph_backend(device: torch.device) -> Optional[type]:
    """The graph class for ``device``'s type (``None``: no CUDA graphs there)."""
    return BACKENDS.get(device.type)


def _signature(tree: Any) -> list:
    """What a captured graph fixes of its inputs: each tensor's shape and dtype (not its device: host batches are
    copied into the device buffers), and every other leaf as it is."""
    leaves, _ = tree_flatten(tree)
    return [(t.shape, t.dtype) if isinstance(t, torch.Tensor) else t for t in leaves]


class StepGraph:
    """``fn`` captured as one graph after ``warmup`` eager calls; see the module docstring."""

    def __init__(self, fn: Callable[..., Any], device: torch.device, warmup: int = 3, name: str = "step",
                 backend: Optional[type] = None):
        self.fn, self.device, self.warmup, self.name = fn, device, warmup, name
        self.backend = backend or graph_backend(device)
        self.calls = 0
        self.graph: Any = None
        self._runner: Any = None                  # the backend instance (warm-up stream, then the graph)
        self.static_in: Any = None
        self.static_out: Any = None
        self._signature: Optional[list] = None
        self.failed: Optional[str] = None if self.backend is not None else f"no CUDA graphs on {device.type}"

    @property
    def captured(self) -> bool:
        return self.graph is not None

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
    """Whether to capture: ``auto`` is on where the device has CUDA graphs and nothing rules them out
    (``why_not``: a reason they cannot be used here, e.g. DDP); ``on`` asks for them and warns once (and runs
    eagerly) where they cannot be used; ``off`` never."""
    if choice not in CHOICES:
        raise ValueError(f"cuda_graphs must be one of {CHOICES}, got {choice!r}")
    if choice == "off":
        return False
    reason = why_not or (None if graph_backend(device) is not None else f"they need a CUDA device, not "
                                                                          f"{device.type}")
    if reason is None:
        return True
    if choice == "on":
        warnings.warn(f"--cuda-graphs on: CUDA graphs are not used ({reason}); running eagerly", stacklevel=2)
    return False


class TensorLR:
    """The learning rates of ``optimizer`` mirrored in 0-dim float32 device tensors, for a captured optimizer step.

    The param groups and the LR scheduler keep float learning rates (the schedule, the checkpoints and eager runs
    are unchanged); :meth:`sync` copies them into the tensors before each step (outside the graph: one small
    host-to-device fill per group), and the optimizer step runs inside :meth:`for_step`, which puts the tensors in
    the groups for the call, so a fused/capturable Adam captured there reads the current value at every replay
    instead of the one frozen at capture."""

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
