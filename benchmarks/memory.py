"""Peak memory of a measured range (here: building one variant and its warm-up call), above what was in use when
the range started: the variant's weights, optimizer state, activations, gradients and temporaries.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus ``memory_allocated`` at the
  start.
* CPU: the PyTorch profiler's allocator events (``profile_memory=True``): every tensor allocation and free of the
  CPU allocator, with its size, on the profiler's clock; the peak of the running sum inside the range, minus the
  sum at its start.  This counts tensor bytes as the CUDA figure does, so fast and plain are compared on what they
  allocate rather than on what glibc keeps resident.  The profiler only knows the size of blocks it saw allocated
  (frees of older blocks are not reported), so the whole case runs inside one profiled session
  (:meth:`MemoryTracker.session`) and each range is marked with :meth:`MemoryTracker.measure`.  (A peak-RSS
  measure would need a fresh process per variant -- an extra paper-config step each -- and its figure depends on
  the malloc arena.)
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from oe_core.errors import OEError

MARK = "benchmarks::"
# Lines the profiler's C++ side (kineto) prints on every session; anything else written to stderr is passed on.
_PROFILER_NOISE = re.compile(r"^(USDT|STAGE|ERROR|WARNING):\S+ \S+ \d+:\d+ \S+\.cpp:\d+\]|CPUAllocator\.cpp:\d+\] "
                             r"Memory block of unknown size")


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Capture file descriptor 2 and replay it afterwards without the profiler's own status lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines() if not _PROFILER_NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class MemoryTracker:
    """Base class: ``with tracker.session(): ...; with tracker.measure(label): call()``; then ``tracker.peaks``."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peaks: dict[str, int] = {}

    def session(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def measure(self, label: str) -> contextlib.AbstractContextManager:
        raise NotImplementedError


class ProfilerMemoryTracker(MemoryTracker):
    """CPU: peaks from the profiler's allocator events (see the module docstring)."""

    def __init__(self, device: torch.device):
        super().__init__(device)
        self._labels: list[str] = []

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        self._labels = []
        with _filtered_stderr():
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                yield
            events = prof.profiler.kineto_results.events()
        self.peaks.update(peaks_from_events(events, self._labels))

    def measure(self, label: str) -> contextlib.AbstractContextManager:
        self._labels.append(label)
        return record_function(MARK + label)


def peaks_from_events(events, labels: list[str]) -> dict[str, int]:
    """Peak bytes above the start of each ``MARK + label`` range, from profiler events (``name()``, ``nbytes()``,
    ``start_ns()``, ``end_ns()``)."""
    allocs = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    spans = {e.name()[len(MARK):]: (e.start_ns(), e.end_ns()) for e in events if e.name().startswith(MARK)}
    peaks = {}
    for label in labels:
        if label not in spans:
            raise OEError(f"memory measurement: the profiler recorded no range for {label!r}")
        start, end = spans[label]
        running = base = peak = 0
        for t, nbytes in allocs:
            if t > end:
                break
            running += nbytes
            if t < start:
                base = peak = running
            else:
                peak = max(peak, running)
        peaks[label] = peak - base
    return peaks


class CudaMemoryTracker(MemoryTracker):
    """CUDA: ``max_memory_allocated`` above ``memory_allocated`` at the start of the call."""

    @contextlib.contextmanager
    def measure(self, label: str) -> Iterator[None]:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        yield
        torch.cuda.synchronize(self.device)
        self.peaks[label] = torch.cuda.max_memory_allocated(self.device) - base


TRACKERS: dict[str, type[MemoryTracker]] = {"cpu": ProfilerMemoryTracker, "cuda": CudaMemoryTracker}


def memory_tracker(device: torch.device) -> MemoryTracker:
    if device.type not in TRACKERS:
        raise OEError(f"no peak-memory measurement for device type {device.type!r}; known: {', '.join(TRACKERS)}")
    return TRACKERS[device.type](device)
