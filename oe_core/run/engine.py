"""The one run engine both trainers share: devices, DDP, checkpoints, logging, resume, preemption.

A trainer is a :class:`Task` (what a model, an optimizer, a batch and a loss are); :class:`Engine` runs it:

* run folder ``cfg.out`` with ``config.json`` (the resolved config), ``metrics.csv``/``metrics.json`` (one row
  per epoch) and ``checkpoint.pt`` (+ ``checkpoint.prev.pt``), written atomically; when the last epoch is done,
  ``model.safetensors`` (the scoring weights) and the task's model card ``README.md`` (:mod:`.release`);
* resume: rerunning the same command on the same folder continues from the checkpoint, exactly: model,
  optimizer, scheduler, task state (EMA, ...), data position (epoch, step) and RNG states are restored, and the
  randomness of every step is derived from ``(seed, epoch, step, rank)`` so data order, augmentation and dropout
  do not depend on where a run was interrupted;
* preemption: SIGTERM/SIGINT finish the current step, write a checkpoint and raise :class:`Preempted`
  (exit code 75 through :func:`oe_core.errors.cli_main`);
* the loss and logs stay on the device and are read back every ``--read-every`` steps, before every checkpoint
  and at each epoch's end (:mod:`.readback`: no host wait per step, the same sums as per-step reading);
* non-finite losses stop the run naming the step (at the readback, before any checkpoint is written), or skip the
  batch (``--on-nonfinite skip``, which reads every step); non-finite weights are never written;
* one trainer per run folder: an exclusive lock (:mod:`.lock`) for the whole run; a second trainer on a busy
  folder stops with one line naming it and the holder's pid (exit code 2);
* DDP under ``torchrun`` (one process per device), bf16 autocast, channels_last, optional ``torch.compile``;
* on CUDA, the whole train step (forward, loss, backward, optimizer step, EMA update) captured once as a CUDA graph
  and replayed (``--cuda-graphs``, :mod:`.cuda_graph`), for tasks whose step is written for it
  (:attr:`Task.capturable`).
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from ..cli_config import config_to_dict, save_config, upgrade_dict
from ..errors import ConfigError, NonFiniteLossError, OEError, Preempted
from ..outputs import check_writable_folder
from .checkpoint import assert_finite_state, has_checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig
from .cuda_graph import StepGraph, TensorLR, resolve_cuda_graphs
from .device import autocast, native_bf16, resolve_device
from .distributed import DistInfo, any_rank, barrier, dist_info_from_env, init_distributed, shutdown_distributed
from .history import write_history
from ..lock import RunLock
from .readback import StepReadback, StepRecord
from .release import ModelCard, final_metrics, write_release
from .seed import derive_seed, rng_state, seed_everything, set_rng_state
from .signals import PreemptionGuard
from .tensorboard import ScalarLog, check_tensorboard

# Config fields that may change between a run and its resumption (they do not change the result).
RUNTIME_FIELDS = {"out", "device", "resume", "progress", "num_workers", "data_root", "download", "compile",
                  "ckpt_every", "tensorboard", "cuda_graphs", "read_every"}


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


class Task(abc.ABC):
    """What one kind of training is. Subclasses: the classifier and density trainers."""

    kind: str = ""
    # True: train_step does no host synchronisation (its logs are tensors) and the device work of after_step is in
    # captured_after_step, so the engine may capture the whole step as one CUDA graph (--cuda-graphs)
    capturable: bool = False

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

    def after_step(self, model: nn.Module, ctx: StepContext) -> None:
        """Called after every optimizer step (e.g. the EMA update)."""

    def before_captured_step(self, ctx: StepContext) -> None:
        """CUDA-graph steps: host bookkeeping before each step, outside the graph (e.g. the EMA weight)."""

    def captured_after_step(self, model: nn.Module, ctx: StepContext) -> None:
        """CUDA-graph steps: the device work of :meth:`after_step`, captured with the step (no host values)."""
        self.after_step(model, ctx)

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
        """The model card of a finished run (``state``: kind, config, model, eval_model, task, history); written
        with ``model.safetensors`` (:mod:`.release`)."""
        return ModelCard(f"{self.kind} model", "Trained with the OE study suite.", {"config": "config.json"},
                         final_metrics(state["history"], ()))


def _config_diff(saved: dict, now: dict) -> list[str]:
    keys = (set(saved) | set(now)) - RUNTIME_FIELDS
    return sorted(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k))


class Engine:
    """Runs a :class:`Task` to completion (or to preemption)."""

    def __init__(self, task: Task):
        self.task = task
        self.cfg: RunConfig = task.cfg
        self.out = Path(self.cfg.out)
        self.history: list[dict] = []

    # ------------------------------------------------------------------ state
    def _state(self, model, optimizer, scheduler, epoch, step, global_step, partial) -> dict:
        model_sd = model.state_dict()
        assert_finite_state(model_sd)
        eval_sd = self.task.eval_state_dict(model)
        if eval_sd is not None:
            assert_finite_state(eval_sd, "evaluation")
        return {"kind": self.task.kind, "config": config_to_dict(self.cfg), "model": model_sd,
                "eval_model": eval_sd, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "task": self.task.state_dict(),
                "position": {"epoch": epoch, "step": step, "global_step": global_step},
                "partial": partial, "rng": rng_state(), "history": self.history}

    def _save(self, *args) -> Path:
        state = self._state(*args)
        pos = state["position"]
        return save_checkpoint(self.out, state, kind=self.task.kind, step=pos["global_step"], epoch=pos["epoch"])

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        cfg = self.cfg
        dist = dist_info_from_env()
        device = resolve_device(cfg.device, dist.local_rank)
        if cfg.amp == "bf16" and not native_bf16(device):
            warnings.warn(f"bf16 autocast on this {device.type} is slow: it has no native bfloat16 arithmetic "
                          "(on CPUs: AVX512_BF16 or AMX)", stacklevel=2)
        if cfg.tensorboard:
            check_tensorboard()  # before the run folder is created
        lock = RunLock(self.out)
        if dist.is_main:  # only rank 0 writes the folder; a second job's rank 0 stops here and torchrun ends it
            check_writable_folder(self.out, "output folder")
            lock.acquire()
        try:
            init_distributed(dist, device)
            try:
                return self._run(dist, device)
            finally:
                shutdown_distributed()
        finally:
            lock.release()

    def _run(self, dist: DistInfo, device: torch.device) -> dict:
        cfg, task = self.cfg, self.task
        if dist.is_main:
            # temporary files of atomic writes (checkpoint, config, metrics) that a kill -9 cut short; safe to
            # delete because the run lock keeps every other trainer out of this folder
            for stale in self.out.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        resume_state = None
        if cfg.resume and has_checkpoint(self.out):
            resume_state = load_checkpoint(self.out, expect_kind=task.kind)
            latest = self.out / "checkpoint.pt"
            if dist.is_main and Path(resume_state["path"]).name != latest.name and latest.exists():
                # never let the next save promote the corrupt file to checkpoint.prev.pt
                os.replace(latest, self.out / "checkpoint.corrupt.pt")
            diff = _config_diff(upgrade_dict(type(cfg), resume_state["config"]), config_to_dict(cfg))
            if diff:
                raise ConfigError(f"run folder {str(self.out)!r} holds a run with a different config "
                                  f"({'; '.join(diff)}); use a new --out, or --no-resume to start over")
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
        scheduler = task.build_scheduler(optimizer, cfg.epochs * spe)
        epoch = step = global_step = 0
        partial = {"loss_sum": 0.0, "count": 0, "skipped": 0, "logs": {}, "seconds": 0.0}
        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
            optimizer.load_state_dict(resume_state["optimizer"])
            if scheduler is not None and resume_state["scheduler"] is not None:
                scheduler.load_state_dict(resume_state["scheduler"])
            task.load_state_dict(resume_state["task"])
            set_rng_state(resume_state["rng"])
            pos = resume_state["position"]
            epoch, step, global_step = pos["epoch"], pos["step"], pos["global_step"]
            partial = resume_state["partial"]
            self.history = list(resume_state["history"])
            if dist.is_main:
                print(f"resuming {self.out} at epoch {epoch + 1}, step {step} (global step {global_step})",
                      file=sys.stderr)
        if dist.is_main:
            save_config(cfg, self.out / "config.json")
            if self.history:
                write_history(self.out, self.history)
        train_model: nn.Module = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            train_model = compile_with_fallback(train_model)
        graph, lrs = None, None
        if resolve_cuda_graphs(cfg.cuda_graphs, device, self._why_no_graphs(dist)):
            lrs = TensorLR(optimizer, device)
            graph = StepGraph(self._whole_step(train_model, model, optimizer, lrs, ctx), device,
                              name=f"{task.kind} train step")
        if epoch >= cfg.epochs and dist.is_main:
            print(f"{self.out}: already trained for {cfg.epochs} epochs", file=sys.stderr)

        scalars = ScalarLog(self.out, cfg.tensorboard and dist.is_main)
        skip_nonfinite = cfg.on_nonfinite == "skip"
        # --on-nonfinite skip decides before each update, so it reads every step back at once
        readback, shown = StepReadback(1 if skip_nonfinite else cfg.read_every), None
        with PreemptionGuard() as guard, contextlib.closing(scalars):
            while epoch < cfg.epochs:
                t0 = time.time() - partial["seconds"]
                model.train()
                bar = _progress(dist.is_main and cfg.progress, spe, step, f"epoch {epoch + 1}/{cfg.epochs}")
                for batch in task.batches(epoch, step):
                    if step >= spe:
                        break
                    ctx.epoch, ctx.step, ctx.global_step = epoch, step, global_step
                    torch.manual_seed(derive_seed(cfg.seed, "step", epoch, step, dist.rank))
                    if graph is not None:    # the whole step, optimizer and EMA update included, as one CUDA graph
                        loss, logs = self._captured_step(graph, lrs, batch, ctx)
                    else:
                        with ctx.autocast():
                            loss, logs = task.train_step(train_model, batch, ctx)
                        optimizer.zero_grad(set_to_none=True)
                        if skip_nonfinite and not math.isfinite(float(loss.detach())):   # needs the host value
                            loss = None                                                   # before the update
                            partial["skipped"] += 1
                        else:
                            loss.backward()
                            optimizer.step()
                    if loss is not None:
                        if scheduler is not None:
                            scheduler.step()
                        if graph is None:
                            task.after_step(model, ctx)
                        readback.add(epoch, step, global_step, loss, logs, optimizer.param_groups[0]["lr"])
                    step += 1
                    global_step += 1
                    if readback.due():
                        shown = self._account(readback.read(), partial, scalars, shown)
                    if bar is not None:
                        bar.update(1)
                        if shown is not None:
                            bar.set_postfix(loss=f"{shown:.4g}", refresh=False)
                    stop = any_rank(guard.requested, device)
                    periodic = cfg.ckpt_every and global_step % cfg.ckpt_every == 0 and step < spe
                    if (stop or periodic) and step < spe:
                        shown = self._account(readback.read(), partial, scalars, shown)
                        partial["seconds"] = time.time() - t0
                        path = self.out / "checkpoint.pt"
                        if dist.is_main:
                            path = self._save(model, optimizer, scheduler, epoch, step, global_step, partial)
                        barrier()
                        if stop:
                            if bar is not None:
                                bar.close()
                            raise Preempted(str(path))
                shown = self._account(readback.read(), partial, scalars, shown)
                if bar is not None:
                    bar.close()
                if step < spe:
                    raise OEError(f"the training data ran out after {step} of {spe} steps in epoch {epoch + 1}")
                row = self._epoch_row(epoch, _sum_over_ranks(partial, device), time.time() - t0, optimizer)
                if graph is not None:      # runs that try to capture say whether they did ("captured", "eager: ...")
                    row["cuda_graph"] = graph.status
                if dist.is_main:
                    model.eval()
                    with torch.no_grad():
                        row.update(task.evaluate(model, ctx))
                    self.history.append(row)
                    scalars.epoch(row)
                    print(task.summary(row), file=sys.stderr, flush=True)
                epoch, step = epoch + 1, 0
                partial = {"loss_sum": 0.0, "count": 0, "skipped": 0, "logs": {}, "seconds": 0.0}
                if dist.is_main:
                    self._save(model, optimizer, scheduler, epoch, step, global_step, partial)
                    write_history(self.out, self.history)
                barrier()
                if any_rank(guard.requested, device) and epoch < cfg.epochs:
                    raise Preempted(str(self.out / "checkpoint.pt"))
        if dist.is_main:   # finished: the scoring weights as model.safetensors, and the model card
            state = {"kind": task.kind, "config": config_to_dict(cfg), "model": model.state_dict(),
                     "eval_model": task.eval_state_dict(model), "task": task.state_dict(), "history": self.history}
            write_release(self.out, state, task.model_card(state))
        return self.history[-1] if self.history else {}

    def _account(self, records: list[StepRecord], partial: dict, scalars: ScalarLog,
                 shown: Optional[float]) -> Optional[float]:
        """Add read-back steps to the epoch's running sums, in step order (the sums of per-step reading, bit for
        bit), and to TensorBoard; ``--on-nonfinite stop``: a non-finite loss raises, naming its step.  Returns the
        latest loss (for the progress bar)."""
        for r in records:
            if not math.isfinite(r.loss):   # (only "stop" gets here: "skip" has dropped the batch before the update)
                raise NonFiniteLossError(
                    f"non-finite loss ({r.loss}) at epoch {r.epoch + 1}, step {r.step} (global step "
                    f"{r.global_step}); the last checkpoint in {str(self.out)!r} is intact "
                    "(try a lower lr, --on-nonfinite skip, or --amp none)")
            partial["loss_sum"] += r.loss
            partial["count"] += 1
            for k, v in r.logs.items():
                partial["logs"][k] = partial["logs"].get(k, 0.0) + v
            scalars.step(r.global_step + 1, r.loss, r.lr, r.logs)
            shown = r.loss
        return shown

    def _why_no_graphs(self, dist: DistInfo) -> Optional[str]:
        """Why this run cannot capture its train step as a CUDA graph (``None``: it can)."""
        if not self.task.capturable:
            return f"the {self.task.kind} trainer's step is not written for capture"
        if dist.enabled:
            return "not under DDP"
        if self.cfg.on_nonfinite != "stop":
            return "--on-nonfinite skip needs the loss on the host before the update"
        return None

    def _whole_step(self, train_model: nn.Module, model: nn.Module, optimizer, lrs: TensorLR, ctx: StepContext):
        """The function a CUDA graph captures: forward, loss, backward, optimizer step, the task's device-side
        after-step work; no host synchronisation (the loss and logs come back as device tensors)."""
        task = self.task

        def whole_step(batch):
            optimizer.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss, logs = task.train_step(train_model, batch, ctx)
            loss.backward()
            with lrs.for_step():
                optimizer.step()
            task.captured_after_step(model, ctx)
            return loss.detach(), logs
        return whole_step

    def _captured_step(self, graph: StepGraph, lrs: TensorLR, batch: Any,
                       ctx: StepContext) -> tuple[torch.Tensor, dict]:
        """One step through ``graph``: the learning rate and the task's host state set outside the graph, then the
        graph (or its eager warm-up/fallback), which copies the host batch straight into its static buffers;
        returns the loss and the logs as device tensors (read back later: :mod:`.readback`)."""
        lrs.sync()
        self.task.before_captured_step(ctx)
        return graph(batch)

    @staticmethod
    def _epoch_row(epoch: int, partial: dict, seconds: float, optimizer) -> dict:
        n = max(partial["count"], 1)
        row = {"epoch": epoch + 1, "time_s": round(seconds, 3), "train_loss": partial["loss_sum"] / n}
        row.update({k: v / n for k, v in partial["logs"].items()})
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        if partial["skipped"]:
            row["nonfinite_skipped"] = partial["skipped"]
        return row


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


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr)


class _CompileFallback(nn.Module):
    """Calls the compiled module (or function); if compiling fails (at the first call, where torch.compile
    fails), warns once and runs the eager one from then on."""

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
