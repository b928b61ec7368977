"""The one run engine both trainers share: :class:`Engine` runs a :class:`Task` in four phases, restore, wrap, epochs
and finish (docs/architecture.md, "The training loop"; the run folder: docs/usage.md; what a run survives:
docs/runs.md).

Rerunning the same command resumes exactly (every step's randomness derives from ``(seed, epoch, step, rank)``);
SIGTERM/SIGINT checkpoint and raise :class:`Preempted`; non-finite weights are never written.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from ..cli_config import config_to_dict, save_config, upgrade_dict
from ..errors import ConfigError, NonFiniteLossError, OEError, Preempted
from ..lock import RunLock
from ..outputs import check_writable_folder
from ..progress import progress_bar
from .checkpoint import assert_finite_state, has_checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig
from .cuda_graph import CapturedStep, resolve_cuda_graphs, why_not_captured
from .device import (DistInfo, any_rank, barrier, dist_info_from_env, init_distributed, native_bf16, resolve_device,
                     shutdown_distributed)
from .history import write_history
from .readback import StepReadback
from .release import write_release
from .seed import derive_seed, rng_state, seed_everything, set_rng_state
from .signals import PreemptionGuard
from .step import EagerStep
from .task import StepContext, StepUpdate, Task
from .tensorboard import ScalarLog, check_tensorboard

__all__ = ["Engine", "Task", "StepContext", "StepUpdate", "TrainState", "compile_with_fallback", "unwrap"]

# Config fields that may change between a run and its resumption (they do not change the result).
RUNTIME_FIELDS = {"out", "device", "resume", "progress", "num_workers", "data_root", "download", "compile",
                  "ckpt_every", "tensorboard", "cuda_graphs", "read_every"}


def _config_diff(saved: dict, now: dict) -> list[str]:
    keys = (set(saved) | set(now)) - RUNTIME_FIELDS
    return sorted(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k))


def _epoch_sums() -> dict:
    """An epoch's running sums (also the checkpoint's ``partial``): loss, counts, logs, seconds so far."""
    return {"loss_sum": 0.0, "count": 0, "skipped": 0, "logs": {}, "seconds": 0.0}


@dataclasses.dataclass
class TrainState:
    """What the phases of :meth:`Engine.run` hand on: model, optimizer, schedule, position, the epoch's sums."""

    ctx: StepContext
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    steps_per_epoch: int
    readback: StepReadback
    epoch: int = 0
    step: int = 0                       # within the epoch
    global_step: int = 0
    partial: dict = dataclasses.field(default_factory=_epoch_sums)
    train_model: Optional[nn.Module] = None   # the model in its DDP / torch.compile wrappers (wrap phase)
    started: float = 0.0                # time.time() at the epoch's start, less the seconds of a resumed epoch
    shown: Optional[float] = None       # the newest loss read back (the progress bar's)
    scalars: Optional[ScalarLog] = None


class Engine:
    """Runs a :class:`Task` to completion (or to preemption)."""

    def __init__(self, task: Task):
        self.task = task
        self.cfg: RunConfig = task.cfg
        self.out = Path(self.cfg.out)
        self.history: list[dict] = []

    def run(self) -> dict:
        """The whole run: restore, wrap, the epochs, finish (under the run folder's lock, and DDP under torchrun).
        Returns the last epoch's row."""
        cfg, task = self.cfg, self.task
        with self._session() as (dist, device):
            state = self._restore(dist, device)             # 1. restore: the model etc. at the checkpoint
            step = self._wrap(state)                        # 2. wrap: DDP, compile; the step runner
            ctx = state.ctx
            if state.epoch >= cfg.epochs and dist.is_main:
                print(f"{self.out}: already trained for {cfg.epochs} epochs", file=sys.stderr)
            state.scalars = ScalarLog(self.out, cfg.tensorboard and dist.is_main)
            forward = lambda b: task.train_step(state.train_model, b, ctx)  # noqa: E731  (the task's step)
            with PreemptionGuard() as guard, contextlib.closing(state.scalars):
                while state.epoch < cfg.epochs:             # 3. the epochs
                    with self._start_epoch(state) as batches:
                        for batch in batches:
                            loss, logs = step(batch, ctx, forward)
                            self._after_step(state, loss, logs, batches, guard)
                    self._end_epoch(state, step.epoch_info(), guard)
            return self._finish(state)                      # 4. finish: model.safetensors, model card

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[DistInfo, torch.device]]:
        """The run's process group and device, with the run folder locked (rank 0) for the whole run."""
        cfg = self.cfg
        dist = dist_info_from_env()
        device = resolve_device(cfg.device, dist.local_rank)
        if cfg.amp == "bf16" and not native_bf16(device):
            warnings.warn(f"bf16 autocast on this {device.type} is slow: it has no native bfloat16 arithmetic "
                          "(on CPUs: AVX512_BF16 or AMX)", stacklevel=4)
        if cfg.tensorboard:
            check_tensorboard()  # before the run folder is created
        lock = RunLock(self.out)
        if dist.is_main:  # only rank 0 writes the folder; a second job's rank 0 stops here and torchrun ends it
            check_writable_folder(self.out, "output folder")
            lock.acquire()
        try:
            init_distributed(dist, device)
            try:
                yield dist, device
            finally:
                shutdown_distributed()
        finally:
            lock.release()

    def _restore(self, dist: DistInfo, device: torch.device) -> TrainState:
        """Phase 1: the task's data, model, optimizer and schedule, at the run folder's checkpoint (resume) or at
        the start; writes ``config.json``."""
        cfg, task = self.cfg, self.task
        saved = self._read_checkpoint(dist)
        seed_everything(cfg.seed)
        ctx = StepContext(cfg=cfg, device=device, dist=dist)
        task.setup(ctx)
        model = task.build_model().to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = task.build_optimizer(model)
        spe = task.steps_per_epoch()
        if cfg.limit_steps:
            spe = min(spe, cfg.limit_steps)
        if spe <= 0:
            raise ConfigError("the training set yields no batches (is it empty, or the batch larger than it "
                              "with drop_last?)")
        # --on-nonfinite skip decides before each update, so it reads every step back at once
        readback = StepReadback(1 if cfg.on_nonfinite == "skip" else cfg.read_every)
        state = TrainState(ctx, model, optimizer, task.build_scheduler(optimizer, cfg.epochs * spe), spe, readback)
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if state.scheduler is not None and saved["scheduler"] is not None:
                state.scheduler.load_state_dict(saved["scheduler"])
            task.load_state_dict(saved["task"])
            set_rng_state(saved["rng"])
            pos = saved["position"]
            state.epoch, state.step, state.global_step = pos["epoch"], pos["step"], pos["global_step"]
            state.partial = saved["partial"]
            self.history = list(saved["history"])
            if dist.is_main:
                print(f"resuming {self.out} at epoch {state.epoch + 1}, step {state.step} (global step "
                      f"{state.global_step})", file=sys.stderr)
        if dist.is_main:
            save_config(cfg, self.out / "config.json")
            if self.history:
                write_history(self.out, self.history)
        return state

    def _read_checkpoint(self, dist: DistInfo) -> Optional[dict]:
        """The run folder's checkpoint when resuming (``None``: start afresh), refused if its config differs."""
        cfg = self.cfg
        if dist.is_main:
            # temporary files of atomic writes a kill -9 cut short (the run lock keeps other trainers out)
            for stale in self.out.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        if not (cfg.resume and has_checkpoint(self.out)):
            return None
        saved = load_checkpoint(self.out, expect_kind=self.task.kind)
        latest = self.out / "checkpoint.pt"
        if dist.is_main and Path(saved["path"]).name != latest.name and latest.exists():
            # never let the next save promote the corrupt file to checkpoint.prev.pt
            os.replace(latest, self.out / "checkpoint.corrupt.pt")
        diff = _config_diff(upgrade_dict(type(cfg), saved["config"]), config_to_dict(cfg))
        if diff:
            raise ConfigError(f"run folder {str(self.out)!r} holds a run with a different config "
                              f"({'; '.join(diff)}); use a new --out, or --no-resume to start over")
        return saved

    def _wrap(self, state: TrainState) -> EagerStep | CapturedStep:
        """Phase 2: the model in its DDP and ``torch.compile`` wrappers, and the step runner (:mod:`.step`): the
        whole step captured as one CUDA graph where it can be (``--cuda-graphs``), else eager."""
        cfg, task, ctx = self.cfg, self.task, state.ctx
        train_model: nn.Module = state.model
        if ctx.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            train_model = DDP(state.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if cfg.compile:
            train_model = compile_with_fallback(train_model)
        state.train_model = train_model
        update = task.step_update()
        why_not = why_not_captured(task.train_step, task.kind, ctx.dist.enabled, cfg.on_nonfinite)
        if resolve_cuda_graphs(cfg.cuda_graphs, ctx.device, why_not):
            return CapturedStep(state.model, state.optimizer, state.scheduler, update, ctx.device,
                                name=f"{task.kind} train step")
        return EagerStep(state.model, state.optimizer, state.scheduler, update,
                         skip_nonfinite=cfg.on_nonfinite == "skip")

    def _start_epoch(self, state: TrainState):
        """Phase 3, an epoch's start: the model in training mode, and its remaining steps' batches (each with the
        step's position in the context and its seed set) in the epoch's progress bar."""
        cfg, ctx = self.cfg, state.ctx
        state.started = time.time() - state.partial["seconds"]
        state.model.train()
        return progress_bar(self._steps(state), f"epoch {state.epoch + 1}/{cfg.epochs}",
                            ctx.dist.is_main and cfg.progress, state.steps_per_epoch, initial=state.step,
                            terminal_only=False)

    def _steps(self, state: TrainState) -> Iterator[Any]:
        cfg, ctx = self.cfg, state.ctx
        for batch in self.task.batches(state.epoch, state.step):
            if state.step >= state.steps_per_epoch:
                break
            ctx.epoch, ctx.step, ctx.global_step = state.epoch, state.step, state.global_step
            # dropout and other draws of the default generators: from (seed, epoch, step, rank), so resumable
            torch.manual_seed(derive_seed(cfg.seed, "step", state.epoch, state.step, ctx.dist.rank))
            yield batch

    def _after_step(self, state: TrainState, loss: Optional[torch.Tensor], logs: dict, bar: Any,
                    guard: PreemptionGuard) -> None:
        """After each step: queue its loss for readback (``None``: skipped as non-finite), advance the position,
        read back when due, and on preemption or every ``--ckpt-every`` steps write a checkpoint."""
        cfg, ctx = self.cfg, state.ctx
        if loss is None:
            state.partial["skipped"] += 1
        else:
            state.readback.add(state.epoch, state.step, state.global_step, loss, logs,
                               state.optimizer.param_groups[0]["lr"])
        state.step += 1
        state.global_step += 1
        if state.readback.due():
            self._account(state)
        if state.shown is not None:
            bar.set_postfix(loss=f"{state.shown:.4g}", refresh=False)
        stop = any_rank(guard.requested, ctx.device)
        periodic = cfg.ckpt_every and state.global_step % cfg.ckpt_every == 0
        if (stop or periodic) and state.step < state.steps_per_epoch:
            self._account(state)
            state.partial["seconds"] = time.time() - state.started
            path = self._checkpoint(state)
            if stop:
                raise Preempted(str(path))

    def _end_epoch(self, state: TrainState, step_info: dict, guard: PreemptionGuard) -> None:
        """Phase 3, an epoch's end: its row (training means over all ranks, the step runner's columns, the
        task's evaluation) in the history, a checkpoint, and the stop a preemption asked for."""
        cfg, task, ctx = self.cfg, self.task, state.ctx
        self._account(state)
        if state.step < state.steps_per_epoch:
            raise OEError(f"the training data ran out after {state.step} of {state.steps_per_epoch} steps in "
                          f"epoch {state.epoch + 1}")
        row = self._epoch_row(state.epoch, _sum_over_ranks(state.partial, ctx.device), time.time() - state.started,
                              state.optimizer)
        row.update(step_info)
        if ctx.dist.is_main:
            state.model.eval()
            with torch.no_grad():
                row.update(task.evaluate(state.model, ctx))
            self.history.append(row)
            state.scalars.epoch(row)
            print(task.summary(row), file=sys.stderr, flush=True)
        state.epoch, state.step, state.partial = state.epoch + 1, 0, _epoch_sums()
        self._checkpoint(state)
        if ctx.dist.is_main:
            write_history(self.out, self.history)
        if any_rank(guard.requested, ctx.device) and state.epoch < cfg.epochs:
            raise Preempted(str(self.out / "checkpoint.pt"))

    def _account(self, state: TrainState) -> None:
        """Add the read-back steps to the epoch's running sums, in step order (the sums of per-step reading, bit
        for bit), and to TensorBoard; ``--on-nonfinite stop``: a non-finite loss raises, naming its step."""
        partial = state.partial
        for r in state.readback.read():
            if not math.isfinite(r.loss):   # (only "stop" gets here: "skip" has dropped the batch before the update)
                raise NonFiniteLossError(
                    f"non-finite loss ({r.loss}) at epoch {r.epoch + 1}, step {r.step} (global step "
                    f"{r.global_step}); the last checkpoint in {str(self.out)!r} is intact "
                    "(try a lower lr, --on-nonfinite skip, or --amp none)")
            partial["loss_sum"] += r.loss
            partial["count"] += 1
            for k, v in r.logs.items():
                partial["logs"][k] = partial["logs"].get(k, 0.0) + v
            state.scalars.step(r.global_step + 1, r.loss, r.lr, r.logs)
            state.shown = r.loss

    @staticmethod
    def _epoch_row(epoch: int, partial: dict, seconds: float, optimizer) -> dict:
        n = max(partial["count"], 1)
        row = {"epoch": epoch + 1, "time_s": round(seconds, 3), "train_loss": partial["loss_sum"] / n}
        row.update({k: v / n for k, v in partial["logs"].items()})
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        if partial["skipped"]:
            row["nonfinite_skipped"] = partial["skipped"]
        return row

    def _finish(self, state: TrainState) -> dict:
        """Phase 4: the scoring weights as ``model.safetensors`` and the model card (rank 0); the last row."""
        task = self.task
        if state.ctx.dist.is_main:
            model = state.model
            done = {"kind": task.kind, "config": config_to_dict(self.cfg), "model": model.state_dict(),
                    "eval_model": task.eval_state_dict(model), "task": task.state_dict(), "history": self.history}
            write_release(self.out, done, task.model_card(done))
        return self.history[-1] if self.history else {}

    def _checkpoint(self, state: TrainState) -> Path:
        """A checkpoint at the state's position (rank 0 writes it; every rank waits for it)."""
        path = self.out / "checkpoint.pt"
        if state.ctx.dist.is_main:
            path = self._save(state.model, state.optimizer, state.scheduler, state.epoch, state.step,
                              state.global_step, state.partial)
        barrier()
        return path

    def _save(self, model, optimizer, scheduler, epoch, step, global_step, partial) -> Path:
        model_sd = model.state_dict()
        assert_finite_state(model_sd)
        eval_sd = self.task.eval_state_dict(model)
        if eval_sd is not None:
            assert_finite_state(eval_sd, "evaluation")
        state = {"kind": self.task.kind, "config": config_to_dict(self.cfg), "model": model_sd,
                 "eval_model": eval_sd, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "task": self.task.state_dict(),
                 "position": {"epoch": epoch, "step": step, "global_step": global_step},
                 "partial": partial, "rng": rng_state(), "history": self.history}
        return save_checkpoint(self.out, state, kind=self.task.kind, step=global_step, epoch=epoch)


def _sum_over_ranks(partial: dict, device: torch.device) -> dict:
    """The epoch's loss/log sums over all ranks (so the CSV reports the global mean, not rank 0's)."""
    import torch.distributed as tdist
    if not (tdist.is_available() and tdist.is_initialized()):
        return partial
    keys = sorted(partial["logs"])
    t = torch.tensor([partial["loss_sum"], partial["count"], partial["skipped"]] +
                     [partial["logs"][k] for k in keys], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    v = t.tolist()
    return {**partial, "loss_sum": v[0], "count": int(v[1]), "skipped": int(v[2]),
            "logs": dict(zip(keys, v[3:]))}


class _CompileFallback(nn.Module):
    """Calls the compiled module (or function); if compiling fails (at the first call), warns once and runs the
    eager one from then on."""

    def __init__(self, module: nn.Module | Callable):
        super().__init__()
        self.module = module
        self.compiled = torch.compile(module)
        self.failed = False

    def forward(self, *args, **kwargs):
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # missing compiler toolchain, unsupported op, ...
                self.failed = True
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); running eagerly",
                              stacklevel=2)
        return self.module(*args, **kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside the engine's DDP and ``torch.compile`` wrappers (both keep it as ``.module``)."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def compile_with_fallback(fn: Callable) -> nn.Module:
    """``torch.compile(fn)`` that warns once and runs ``fn`` eagerly if compiling fails (the engine's model, a
    task's own functions such as the density trainer's likelihood, the scorer's network)."""
    return _CompileFallback(fn)
