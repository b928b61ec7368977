"""``python -m benchmarks.run``: the suite's PixelCNN++ and DMOL code against the pclucas14 port's own code (read at
run time from ``--port-dir``), and the WRN OE step against the OE reference's loop, side by side.

For every case: build each variant and call it once as a warm-up (peak memory from the start of the build to the
end of the warm-up; FLOPs of the warm-up call), then time the variants alternately, call by call, for up to
``--repeats`` rounds; report the median.  The matmul peak is measured at the start and at the end; the better of
the two is the reference for the FLOP-rate fractions.  Prints a table, writes a JSON file
and optionally appends a markdown section to ``docs/performance.md``.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

import torch

from oe_core.cli_config import parse_config
from oe_core.errors import OEError, cli_main
from oe_core.run import resolve_device
from oe_core.atomic import atomic_write_text

from .cases import CASES
from .config import BenchConfig
from .flops import flop_counter, matmul_peak
from .linearity import batch_linearity, dataset_linearity
from .machine import describe, load_average
from .memory import MemoryTracker, memory_tracker
from .port import load_port
from .report import markdown_section, noise_warnings, text_report
from .sizes import sizes_for
from .targets import check_targets
from .timing import alternate, median, synchronizer, timed
from .workload import FAST, BASE, BenchContext, CaseSpec

MB = 2.0 ** 20


def measure_case(spec: CaseSpec, ctx: BenchContext, tracker: MemoryTracker, cfg: BenchConfig) -> dict:
    """Build and warm up each variant of one case (peak memory, FLOPs), then time them alternately."""
    sync = synchronizer(ctx.device)
    with tracker.session():
        work = spec.build(ctx)
        calls, warmup, flops = {}, {}, {}
        for variant, build in work.variants.items():
            with tracker.measure(variant):
                calls[variant] = build()
                if ctx.compile and variant == FAST:
                    # the compiling call runs outside FlopCounterMode: its module tracker installs global module
                    # hooks, under which torch.compile warns and compiles something else than what is timed
                    warmup[variant] = timed(calls[variant], sync)
                    flops[variant] = None
                    continue
                with flop_counter() as counter:
                    warmup[variant] = timed(calls[variant], sync)
            flops[variant] = counter.get_total_flops()
    if flops.get(FAST, 0) is None:       # compiled: the same convolutions as the baseline (equal counts in eager)
        flops[FAST] = flops[BASE]
    peaks = {v: tracker.peaks[v] for v in calls}
    times = alternate(calls, sync, cfg.repeats, cfg.case_seconds)
    out: dict = {"title": spec.title, "detail": work.detail, "baseline": work.baseline,
                 "images_per_call": work.images, "repeats": len(times[FAST])}
    for variant, ts in times.items():
        med = median(ts)
        gflops = flops[variant] / med / 1e9 if flops[variant] else None
        out[variant] = {"times_s": ts, "median_s": med, "spread": max(ts) / min(ts), "warmup_s": warmup[variant],
                        "images_per_s": work.images / med, "peak_mem_mb": peaks[variant] / MB,
                        "flops_per_call": flops[variant], "gflops_per_s": gflops}
    fast, base = out[FAST], out[BASE]
    out["speedup"] = fast["images_per_s"] / base["images_per_s"]
    out["memory_ratio"] = fast["peak_mem_mb"] / base["peak_mem_mb"] if base["peak_mem_mb"] > 0 else None
    del work, calls
    gc.collect()
    return out


def add_peak_fractions(case: dict, peak_gflops: float) -> None:
    """Each variant's achieved FLOP rate as a fraction of the matmul peak (``None`` without counted FLOPs)."""
    for variant in (FAST, BASE):
        rate = case[variant]["gflops_per_s"]
        case[variant]["peak_fraction"] = None if rate is None else rate / peak_gflops


def default_json_path(device_type: str, cfg: BenchConfig) -> Path:
    suffix = ("-bf16" if cfg.amp == "bf16" else "") + ("-compile" if cfg.compile else "") + \
        ("-graphs" if cfg.cuda_graphs else "") + ("-quick" if cfg.quick else "")
    return Path("benchmarks") / "results" / f"{device_type}{suffix}.json"


class _Log:
    """Progress lines on stderr, stamped with the seconds since the start."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[bench {time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def numerics(device: torch.device, amp: str, threads: int) -> Iterator[None]:
    """Set the thread count, and on CUDA without amp turn TF32 off (cuDNN enables it for convolutions by default),
    so that "float32" means float32 in convolutions and in the matmul peak alike; restore both afterwards."""
    saved = (torch.get_num_threads(), torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.set_num_threads(threads)
    if device.type == "cuda" and amp == "none":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[1:]


def run(cfg: BenchConfig) -> dict:
    """Run the selected cases and the linearity series; return the results dict (also what the JSON holds)."""
    device = resolve_device(cfg.device)
    with numerics(device, cfg.amp, cfg.threads or os.cpu_count() or 1):
        return _run(cfg, device)


def _run(cfg: BenchConfig, device: torch.device) -> dict:
    profile, sizes = sizes_for(device, cfg.quick)
    needs_port = any(CASES.get(n).needs_port for n in cfg.selected_cases())
    port = load_port(cfg.port_dir, drop_cuda=device.type != "cuda") if needs_port else None
    ctx = BenchContext(device=device, amp=cfg.amp, sizes=sizes, channels_last=cfg.channels_last, seed=cfg.seed,
                       compile=cfg.compile, port=port, cuda_graphs=cfg.cuda_graphs)
    tracker = memory_tracker(device)
    log, load_start = _Log(), load_average()
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float32
    log(f"matmul peak ({', '.join(map(str, sizes.matmul_sizes))})")
    first_peak = matmul_peak(device, dtype, sizes.matmul_sizes)
    results: dict = {"profile": profile, "device_type": device.type, "config": asdict(cfg),
                     "port": port.describe() if port else None, "load_start": load_start, "cases": {},
                     "linearity": {}}
    for name in cfg.selected_cases():
        log(f"{name}: {CASES.get(name).title}")
        results["cases"][name] = measure_case(CASES.get(name), ctx, tracker, cfg)
    if cfg.linearity:
        sync = synchronizer(device)
        log("linearity in batch size")
        results["linearity"]["batch"] = batch_linearity(ctx, sync, cfg.case_seconds, cfg.repeats)
        log("linearity in data-set size")
        results["linearity"]["dataset"] = dataset_linearity(ctx, sync, cfg.case_seconds, cfg.repeats)
    log("matmul peak again")
    runs = [first_peak, matmul_peak(device, dtype, sizes.matmul_sizes)]
    results["matmul_peak"] = {"dtype": first_peak["dtype"], "sizes": list(sizes.matmul_sizes),
                              "gflops": max(r["gflops"] for r in runs), "runs": runs}
    for case in results["cases"].values():
        add_peak_fractions(case, results["matmul_peak"]["gflops"])
    results["targets"] = check_targets(results)
    results["machine"] = describe(device)
    results["warnings"] = noise_warnings(results)
    results["wall_s"] = time.perf_counter() - log.start
    results["date_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(BenchConfig, argv, prog="python -m benchmarks.run")
    md_path = Path(cfg.markdown_append) if cfg.markdown_append else None
    if md_path is not None and not md_path.parent.is_dir():
        raise OEError(f"--markdown-append {str(md_path)!r}: folder {str(md_path.parent)!r} does not exist")
    results = run(cfg)
    print(text_report(results))
    path = Path(cfg.json) if cfg.json else default_json_path(results["device_type"], cfg)
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    print(f"\nresults written to {path}")
    if md_path is not None:
        with md_path.open("a") as f:
            f.write("\n" + markdown_section(results))
        print(f"markdown section appended to {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
