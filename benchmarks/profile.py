"""``python -m benchmarks.profile``: where the time of a PixelCNN++ training step goes, the suite against the port.

Profiles the benchmark's own train-step calls (:func:`benchmarks.pixelcnn_cases.fast_train_step` and
:func:`~benchmarks.pixelcnn_cases.port_train_step`, the pclucas14 port's own code) with ``torch.profiler`` and
splits each variant's self time per step into

* convolutions: the shifted and strided convolutions and the transposed ones, forward and backward (oneDNN's
  kernels in both variants);
* matrix products: the 1x1 ``nin`` layers (the suite: ``bmm``/``baddbmm``; the port: ``mm``/``addmm``);
* everything else: element-wise work, the likelihood, weight norm, copies, the optimizer.

The printed bound is what the speed target can be at most with the matrix work as it is: the port's step time over
the suite's matrix work alone (every other op taking no time).  Where the bound is below a target, no element-wise
work can reach it; where it is above, the table says how much of the rest must go.  Prints markdown (paste it into
``docs/performance.md``).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import cli_main
from oe_core.run.device import resolve_device

from .machine import describe
from .pixelcnn_cases import fast_train_step, port_train_step
from .port import load_port
from .sizes import sizes_for
from .targets import SPEEDUP_TARGETS
from .workload import BenchContext

CATEGORIES = ("convolutions", "matrix products", "everything else")
_MATRIX_OPS = {"aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm"}


@dataclass
class ProfileConfig:
    """Profile a PixelCNN++ train step of the suite and of the pclucas14 port, op by op."""

    config: str = help_field("small", "model config and batch of the benchmark's case: small (train_small) or "
                                      "paper (train_paper)", choices=("small", "paper"))
    amp: str = help_field("none", "bf16: the suite under bf16 autocast, the port in float32 (as benchmarks.run)",
                          choices=("none", "bf16"))
    steps: int = help_field(2, "profiled steps per variant (after one warm-up step)")
    threads: int = help_field(0, "CPU threads for torch (0: all cores)")
    port_dir: str = help_field("", "folder of a pclucas14/pixel-cnn-pp clone (default: ../shared/anchors/"
                                   "pixel-cnn-pp next to this repository)")
    quick: bool = help_field(False, "tiny sizes (a smoke test, not a measurement)")
    seed: int = help_field(0, "seed for the random weights and inputs")

    def validate(self) -> None:
        require(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
        require(self.threads >= 0, f"--threads must be >= 0, got {self.threads}")


def category(op: str) -> str:
    """The bucket of a profiler event name (``aten::...``)."""
    if "conv" in op:
        return "convolutions"
    if op in _MATRIX_OPS:
        return "matrix products"
    return "everything else"


def breakdown(step: Callable[[], torch.Tensor], steps: int) -> dict[str, float]:
    """Seconds per step of self CPU time in each category (and ``total``), over ``steps`` profiled calls."""
    step()                                                  # warm-up: oneDNN primitives, allocator
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    for event in prof.key_averages():
        seconds[category(event.key)] += event.self_cpu_time_total / 1e6 / steps
    seconds["total"] = sum(seconds[c] for c in CATEGORIES)
    return seconds


def bounds(suite: dict[str, float], port: dict[str, float], target: float) -> dict[str, float]:
    """The ratio now, its bound with only the matrix work left, and the non-matrix time the target allows."""
    matrix = suite["convolutions"] + suite["matrix products"]
    return {"ratio": port["total"] / suite["total"], "bound": port["total"] / matrix,
            "rest_now": suite["everything else"], "rest_allowed": port["total"] / target - matrix}


def markdown(cfg: ProfileConfig, suite: dict, port: dict, target: float, machine: dict, label: str) -> str:
    b = bounds(suite, port, target)
    amp = "bf16 autocast" if cfg.amp == "bf16" else "float32"
    lines = [f"Train step, {label}; the suite in {amp}, the port in float32; {machine.get('cpu', '?')} (native "
             f"bf16: {machine.get('native_bf16')}), "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}; self CPU time per step, "
             f"{cfg.steps} profiled steps each.", "",
             "| | density_oe | pclucas14 port |", "|---|---|---|"]
    for c in (*CATEGORIES, "total"):
        lines.append(f"| {c} | {suite[c]:.3f} s ({suite[c] / suite['total']:.0%}) | "
                     f"{port[c]:.3f} s ({port[c] / port['total']:.0%}) |")
    lines += ["", f"- ratio (port / suite, profiled): {b['ratio']:.2f}x; target {target}x",
              f"- bound with the suite's matrix work as it is and everything else at zero: {b['bound']:.2f}x",
              f"- the target needs everything else at {max(b['rest_allowed'], 0.0):.3f} s per step "
              f"(now {b['rest_now']:.3f} s)" if b["rest_allowed"] > 0 else
              f"- out of reach with everything else at zero: the matrix work alone would have to be "
              f"{1 - port['total'] / target / (suite['convolutions'] + suite['matrix products']):.0%} faster"]
    return "\n".join(lines)


def profile_both(cfg: ProfileConfig) -> tuple[dict[str, float], dict[str, float], str]:
    """Per-step seconds in each category for the suite and for the port (threads as set), and the case's label."""
    device = resolve_device("cpu")
    _, sizes = sizes_for(device, cfg.quick)
    ctx = BenchContext(device=device, amp=cfg.amp, sizes=sizes, seed=cfg.seed, port=load_port(cfg.port_dir))
    shape = sizes.shape(cfg.config)
    batch = sizes.small_batch if cfg.config == "small" else sizes.paper_batch
    suite = breakdown(fast_train_step(ctx, shape, batch), cfg.steps)
    port = breakdown(port_train_step(ctx, shape, batch), cfg.steps)
    return suite, port, f"{shape.label()}, batch {batch}"


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(ProfileConfig, argv, prog="python -m benchmarks.profile")
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    suite, port, label = profile_both(cfg)
    target = SPEEDUP_TARGETS["bf16" if cfg.amp == "bf16" else "none"][f"train_{cfg.config}"]
    print(markdown(cfg, suite, port, target, describe(torch.device("cpu")), label))
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
