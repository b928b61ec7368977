"""``python -m benchmarks.gpu_speed``: the GPU fast path of the PixelCNN++ train step and scoring, mode by mode.

For the paper config (F=160, R=5, K=10, 32x32), one process, one JSON (``--json``):

* ``batch_table``: train-step images/s at batches 32/64/128/256 (``--batches``), eager and with the whole step
  captured as a CUDA graph (forward, DMOL loss, backward, fused Adam with the LR as a device tensor), each graph
  cell with its capture status (``captured``, or ``eager: <why>``) and each row with its peak memory.  A row whose
  peak memory, predicted linearly from the largest smaller batch measured, exceeds 90% of the device's memory is
  skipped with that reason, and a row that runs out of memory anyway is recorded as
  such instead of ending the measurement;
* ``modes`` (``--no-modes`` skips them): at batch 64, eager, ``torch.compile`` (network and likelihood), CUDA
  graph, and compile + CUDA graph (train step), and the same for scoring (eval mode, ``inference_mode``, batch
  ``--score-batch``); with the compile time and, for graph modes, the capture status;
* ``per_step``: CUDA kernels, aten ops (every level) and NCHW<->NHWC layout-transpose kernels in one profiled
  step of each train mode.

Steps are timed back to back (``--steps`` of them after the warm-up, one synchronisation at the end), as a
training loop runs them.  ``--amp bf16 --channels-last`` is the fast path; ``--dry-run`` runs everything on the
CPU at a toy size (no compile, no graphs: there are none on CPUs) to check the script.  The JSON is rewritten after
every measurement, so a run stopped by its time limit keeps what it measured (compile comes last).
"""
from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from density_oe.scorer import Scorer
from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config
from oe_core.errors import cli_main
from oe_core.run import resolve_device
from oe_core.run.cuda_graph import StepGraph

from .pixelcnn_cases import fast_model, train_step_and_graph
from .sizes import PROFILES
from .timing import synchronizer
from .workload import BenchContext

LAYOUT_KERNELS = ("nchwToNhwc", "nhwcToNchw")


@dataclass
class SpeedConfig:
    """Measure the PixelCNN++ GPU fast path: batch table, eager vs compile vs CUDA graphs, kernels per step."""

    device: str = help_field("cuda", "the GPU (cpu with --dry-run)")
    amp: str = help_field("bf16", "precision of the network", choices=("none", "bf16"))
    channels_last: bool = help_field(True, "channels_last memory format")
    batches: list[int] = help_field([32, 64, 128, 256], "train-step batch sizes of the table")
    mode_batch: int = help_field(64, "train-step batch of the eager/compile/graph comparison")
    score_batch: int = help_field(256, "scoring batch")
    steps: int = help_field(10, "timed steps per measurement")
    compile: bool = help_field(True, "also measure torch.compile (its compile time counts against the budget)")
    modes: bool = help_field(True, "also measure the eager/compile/graph modes and count kernels per step "
                                   "(--no-modes: the batch table only)")
    dry_run: bool = help_field(False, "CPU, toy model, a few steps, no compile: checks the script")
    json: str = help_field("", "where to write the results")


def _context(cfg: SpeedConfig, device: torch.device, compiled: bool, graphs: bool) -> BenchContext:
    """The benchmark cases' context: the paper config on 32x32 images (``--dry-run``: the quick profile's toy
    model on 8x8)."""
    return BenchContext(device, cfg.amp, PROFILES["quick" if cfg.dry_run else "gpu"],
                        channels_last=cfg.channels_last, compile=compiled, cuda_graphs=graphs)


def train_step(cfg: SpeedConfig, device: torch.device, batch: int, compiled: bool, graphs: bool):
    """A zero-argument train step of ``batch`` fixed random images, and the step it calls (the benchmark's own:
    :func:`benchmarks.pixelcnn_cases.train_step_and_graph`)."""
    ctx = _context(cfg, device, compiled, graphs)
    return train_step_and_graph(ctx, ctx.sizes.paper, batch)


def score_step(cfg: SpeedConfig, device: torch.device, compiled: bool, graphs: bool):
    ctx = _context(cfg, device, compiled, graphs)
    model = fast_model(ctx, ctx.sizes.paper).eval()
    scorer = Scorer(model, device, cfg.amp, ctx.memory_format, compiled, "on" if graphs else "off").__enter__()
    images = ctx.uint8_images(cfg.score_batch).to(device)
    return (lambda: scorer.batch(images)), scorer


def rate(call: Callable[[], object], images: int, steps: int, device: torch.device, warmup: int = 5) -> dict:
    """Warm-up calls (compile, capture) timed apart, then ``steps`` calls back to back."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        call()
    synchronizer(device)()
    t1 = time.perf_counter()
    for _ in range(steps):
        call()
    synchronizer(device)()
    t2 = time.perf_counter()
    per = (t2 - t1) / steps
    return {"warmup_s": t1 - t0, "ms_per_step": 1e3 * per, "images_per_s": images / per}


def count_step(call: Callable[[], object], device: torch.device) -> dict:
    """CUDA kernels, aten ops (every nesting level) and layout-transpose kernels of one call."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronizer(device)()
    with profile(activities=acts) as prof:
        call()
        synchronizer(device)()
    kernels = aten = layout = 0
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kernels += 1
            layout += any(k in e.name for k in LAYOUT_KERNELS)
        elif e.name.startswith("aten::"):
            aten += 1
    return {"cuda_kernels": kernels, "aten_ops": aten, "layout_transposes": layout}


MEMORY_FRACTION = 0.9      # of the device's memory a train-step row may be predicted to need


def memory_guard(batch: int, peaks: dict[int, int], total: int) -> Optional[str]:
    """Why the train-step row at ``batch`` is skipped (``None``: run it): its peak memory predicted linearly from
    the largest smaller batch measured (``peaks``: batch -> bytes; the weights and optimizer state do not grow
    with the batch, so this overestimates) against ``MEMORY_FRACTION`` of ``total`` bytes (0: unknown)."""
    smaller = [b for b in peaks if b < batch and peaks[b] > 0]
    if not smaller or total <= 0:
        return None
    b0 = max(smaller)
    need = peaks[b0] * batch / b0
    if need <= MEMORY_FRACTION * total:
        return None
    return (f"skipped: needs about {need / 2**30:.0f} GiB (batch {b0} peaked at {peaks[b0] / 2**30:.1f} GiB), "
            f"more than {MEMORY_FRACTION:.0%} of the device's {total / 2**30:.0f} GiB")


def _release(device: torch.device) -> None:
    """Free what the last measurement held (its graph's private pool included) before the next one."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _status(fn: object) -> Optional[str]:
    return fn.status if isinstance(fn, StepGraph) else None


def measure(cfg: SpeedConfig, save: Callable[[dict], None] = lambda results: None) -> dict:
    device = torch.device("cpu") if cfg.dry_run else resolve_device(cfg.device)
    on_gpu = device.type == "cuda"
    steps = 2 if cfg.dry_run else cfg.steps
    batches = [2, 4] if cfg.dry_run else cfg.batches
    mode_batch = 2 if cfg.dry_run else cfg.mode_batch
    if cfg.dry_run:
        cfg.score_batch = 4
    out: dict = {"config": asdict(cfg), "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
                 "torch": torch.__version__, "batch_table": [], "modes": {}, "per_step": {}}
    log = lambda m: print(f"[gpu_speed {time.perf_counter() - start:6.1f}s] {m}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    graph_modes = (False, True) if on_gpu else (False,)
    total = torch.cuda.get_device_properties(device).total_memory if on_gpu else 0
    peaks: dict[int, int] = {}
    for batch in batches:
        row: dict = {"batch": batch}
        skip = memory_guard(batch, peaks, total)
        if skip is not None:
            row["skipped"] = skip
            log(f"train step, batch {batch}: {skip}")
        for graphs in graph_modes if skip is None else ():
            name = "graph" if graphs else "eager"
            log(f"train step, batch {batch}, {'CUDA graph' if graphs else 'eager'}")
            if on_gpu:
                torch.cuda.reset_peak_memory_stats(device)
            call = fn = None
            try:
                call, fn = train_step(cfg, device, batch, False, graphs)
                row[name] = rate(call, batch, steps, device)
                if graphs:
                    row[name]["captured"] = _status(fn)
            except torch.cuda.OutOfMemoryError as e:
                row[name] = {"error": f"out of memory ({str(e).splitlines()[0][:120]})"}
            call = fn = None
            _release(device)
            if on_gpu:
                row["peak_gib"] = max(row.get("peak_gib", 0.0), torch.cuda.max_memory_allocated(device) / 2**30)
                peaks[batch] = int(row["peak_gib"] * 2**30)
        out["batch_table"].append(row)
        save(out)
    modes = [("eager", False, False), ("cuda_graph", False, True), ("compile", True, False),
             ("compile+cuda_graph", True, True)]
    for name, compiled, graphs in modes if cfg.modes else ():
        if (compiled and not (cfg.compile and not cfg.dry_run)) or (graphs and not on_gpu):
            continue
        log(f"train step, batch {mode_batch}, {name}")
        call, fn = train_step(cfg, device, mode_batch, compiled, graphs)
        out["modes"][f"train/{name}"] = rate(call, mode_batch, steps, device)
        if graphs:
            out["modes"][f"train/{name}"]["captured"] = _status(fn)
        out["per_step"][name] = count_step(call, device)
        del call, fn
        log(f"scoring, batch {cfg.score_batch}, {name}")
        call, scorer = score_step(cfg, device, compiled, graphs)
        out["modes"][f"score/{name}"] = rate(call, cfg.score_batch, steps, device)
        if graphs:
            out["modes"][f"score/{name}"]["captured"] = scorer.graph_status
        scorer.__exit__(None, None, None)
        del call, scorer
        save(out)
        _release(device)
    out["wall_s"] = time.perf_counter() - start
    return out


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(SpeedConfig, argv, prog="python -m benchmarks.gpu_speed")
    def save(results: dict) -> None:      # after every measurement: a run cut short keeps what it measured
        if cfg.json:
            atomic_write_text(Path(cfg.json), json.dumps(results, indent=1) + "\n")

    results = measure(cfg, save)
    save(results)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
