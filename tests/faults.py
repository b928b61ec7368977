"""Fault injection shared by the trainer tests: SIGTERM at a step (``preempting``), and SIGKILL at a chosen point
of a real run, including inside a checkpoint write (``Kill``, ``run_killed``).

The SIGKILL hooks live here, in the test suite, not in the library: the child process that runs the trainer
patches the trainer's ``train_step``/optimizer and the ``os`` that :mod:`oe_core.atomic` and
:mod:`oe_core.run.checkpoint` see, then sends itself SIGKILL at the chosen point.  Nothing of this runs in a
normal run.
"""
from __future__ import annotations

import os
import random
import signal
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


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


KILL_KINDS = ("step", "update", "write", "rotate")


@dataclass(frozen=True)
class Kill:
    """Where a run SIGKILLs itself.

    * ``step``: at the start of global step ``at`` (0-based), before its forward pass;
    * ``update``: right after the optimizer update of global step ``at``, before the scheduler step, the EMA
      update and any checkpoint;
    * ``write``: halfway through writing the bytes of the checkpoint at position ``at`` (written after global
      step ``at - 1``), inside :func:`oe_core.atomic.atomic_write_bytes`, before its fsync and rename;
    * ``rotate``: while saving that checkpoint, after ``checkpoint.pt`` became ``checkpoint.prev.pt`` and before
      the new file is moved in (no ``checkpoint.pt`` on disk).
    """

    kind: str
    at: int

    @property
    def time(self) -> int:
        """Order of the kill points within a run."""
        if self.kind in ("write", "rotate"):
            return 3 * (self.at - 1) + 2
        return 3 * self.at + (self.kind == "update")


def kill_plan(seed: int, total_steps: int, checkpoints: Sequence[int], n_steps: int, n_writes: int,
              n_rotates: int) -> list[Kill]:
    """Random kill points, seeded, in run order: ``n_steps`` at steps or updates, ``n_writes`` inside checkpoint
    writes and ``n_rotates`` in checkpoint rotations (at distinct positions of ``checkpoints``, the run's
    checkpoint positions in order)."""
    rng = random.Random(seed)
    rotates = rng.sample(list(checkpoints[1:]), n_rotates)  # the first checkpoint has nothing to rotate
    writes = rng.sample([p for p in checkpoints if p not in rotates], n_writes)
    kills = [Kill("write", p) for p in writes] + [Kill("rotate", p) for p in rotates]
    kills += [Kill(rng.choice(("step", "update")), g) for g in rng.sample(range(total_steps), n_steps)]
    return sorted(kills, key=lambda k: k.time)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Os(types.SimpleNamespace):
    """The ``os`` module with some functions replaced (for one module's global ``os``)."""

    def __getattr__(self, name):
        return getattr(os, name)


class _HalfThenDie:
    """A file whose ``write`` writes half the bytes, makes them durable, then SIGKILLs the process."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(bytes(data[:len(data) // 2]))
        self.f.flush()
        os.fsync(self.f.fileno())
        _die()

    def __getattr__(self, name):
        return getattr(self.f, name)


def _arm(task_cls: type, kill: Kill) -> None:
    """Patch, in this (child) process, what ``kill`` needs to SIGKILL the process at its point."""
    from oe_core import atomic
    from oe_core.run import checkpoint
    last = {"step": -1}
    train_step = task_cls.train_step

    def watched_step(self, model, batch, ctx):
        last["step"] = ctx.global_step
        if kill.kind == "step" and ctx.global_step == kill.at:
            _die()
        return train_step(self, model, batch, ctx)

    task_cls.train_step = watched_step
    if kill.kind == "update":
        build = task_cls.build_optimizer

        def build_watched(self, model):
            opt = build(self, model)
            opt.register_step_post_hook(lambda *a: _die() if last["step"] == kill.at else None)
            return opt

        task_cls.build_optimizer = build_watched
    saving_it = lambda: last["step"] == kill.at - 1   # the checkpoint after step at - 1
    if kill.kind == "write":
        def fdopen(fd, *args, **kwargs):
            f = os.fdopen(fd, *args, **kwargs)
            if checkpoint.NEXT in os.readlink(f"/proc/self/fd/{fd}") and saving_it():
                return _HalfThenDie(f)
            return f

        atomic.os = _Os(fdopen=fdopen)
    if kill.kind == "rotate":
        def replace(src, dst):
            os.replace(src, dst)
            if os.path.basename(dst) == checkpoint.PREVIOUS and saving_it():
                _die()

        checkpoint.os = _Os(replace=replace)


def run_killed(main: Callable[[list], int], task_cls: type, argv: list, kill: Kill | None = None) -> int:
    """Run ``main(argv)`` with one intra-op thread, in a forked child that SIGKILLs itself at ``kill`` (if given;
    else in this process); return the exit code (``-SIGKILL`` when the kill point was reached).

    A fork, not a new interpreter, so a chaos test of many kills stays fast (no ``import torch`` per restart).
    The runs without a kill stay in this process so that tools that watch which code a test runs (coverage,
    mutmut) see the engine.  Compare results only with runs made the same way: the thread count changes float
    reductions.
    """
    if kill is None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return main(argv)
        finally:
            torch.set_num_threads(threads)
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test runner
        code = 1
        try:
            torch.set_num_threads(1)
            _arm(task_cls, kill)
            code = main(argv)
        except BaseException:  # noqa: BLE001 (the child reports anything, then exits non-zero)
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def assert_bit_equal(got, expected, where: str = "state") -> None:
    """Nested dicts/lists/tuples of tensors and plain values are equal, tensors bit for bit (dtype included)."""
    if torch.is_tensor(expected):
        assert torch.is_tensor(got) and got.dtype == expected.dtype and torch.equal(got, expected), where
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), (where, sorted(got), sorted(expected))
        for k in expected:
            assert_bit_equal(got[k], expected[k], f"{where}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_bit_equal(g, e, f"{where}[{i}]")
    else:
        assert got == expected, (where, got, expected)
