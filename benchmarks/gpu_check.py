"""``python -m benchmarks.gpu_check`` (``scripts/gpu_check.sh``): the GPU checks of the suite in one call,
at most 8 minutes (``--budget``: each step gets what is left; a step past it is killed and reported), or with
``--quick`` the first 6 minutes of a GPU session, the top risks first, each step with its own budget (printed).

Steps, each in its own process, every log kept under ``--out``, in order of importance:

1. the CUDA tests (``pytest -m cuda``; skipped tests and their reasons are reported);
2. the benchmark against the pclucas14 port in bf16 with the fast path (channels_last, the whole train step and
   the scoring batch as CUDA graphs): paper-config train step at batch 64 (the port's default), scoring at batch
   256, the WRN-40-2 OE step; the port runs as written, in float32; a failed capture is an error there;
3. one short epoch of each trainer with ``--amp bf16 --channels-last`` and the default loader workers (pinned
   batches, a pin-memory thread: what the capture must survive), interrupted by SIGTERM once the progress bar shows
   a finished step, then resumed by rerunning the same command to the end.  The density trainer must capture its
   step (``--cuda-graphs auto``) on a GPU: a run that fell back to eager fails the step;
4. graph = eager: the density trainer for a few steps with ``--cuda-graphs auto`` and ``off``, same seed, dropout
   on: the epoch's train loss, train bits/dim and the final test bits/dim (EMA 0.9) agree within
   ``GRAPH_EAGER_TOLERANCE_BPD``; the same for ``--compile`` (network and DMOL likelihood through Inductor, with
   ``fallback_random`` so that its dropout masks are eager's) within ``COMPILE_EAGER_TOLERANCE_BPD``;
5. bpd scoring of the trained density run in bf16 and in float32 on the same weights, over 2000 images (must agree
   within 0.01 per image; the dry run's 8x8 toy within the limit :func:`score_tolerance_bpd` derives); the run's
   training weights (``--weights train``): after one short epoch its EMA is still mostly
   the initialisation, a degenerate model whose bits/dim no precision reproduces; each must capture on a GPU;
6. :mod:`benchmarks.gpu_speed`: the train-step batch table (32/64/128/256, eager and CUDA graph; a batch
   predicted not to fit the device's memory is skipped), eager vs ``torch.compile`` vs CUDA graph vs both for the
   train step and scoring, and kernels, aten ops and layout transposes per step (compile last: its compile time is
   the least predictable); every graph row must have captured.  Next to the bare step, the real trainer step
   (EMA, logging, data loading with the default workers, the readback of the losses): the density trainer's
   per-step time from two runs of different lengths (their difference cancels start-up, capture and evaluation),
   and its ratio to the bare step.

``--quick`` runs, in this order: capture with the default workers (step 3's density run), graph = eager (without
compile), speed at batch 32 and 64 with the real trainer step, the CUDA tests; budgets in ``QUICK_BUDGETS``.

Every row of the summary says whether CUDA graphs were captured where they should be (``capture`` column).

Writes ``benchmarks/results/gpu.json`` (``--results``): the benchmark's JSON in the format of ``cpu.json`` plus
``gpu_speed``, ``score_precision``, ``graph_eager``, ``trainer_step`` and ``gpu_targets`` (train step >= 1500
images/s at batch 64, scoring >= 5000 images/s); ``--quick`` writes ``OUT/gpu-quick.json``.  Prints one markdown
summary on stdout and exits 1 if any step failed (the failing logs' tails go to stderr).  ``--dry-run`` runs the
same steps on the CPU at toy sizes (no CUDA graphs; compile disabled with ``TORCH_COMPILE_DISABLE=1``), writing
its JSON under ``--out`` only, so CI proves the script works before a GPU is ever lent.

On a machine without ``../shared`` next to the repository, ``scripts/gpu_check.sh --stage-port`` first copies the
port into the git-ignored ``.port/`` (carry it along), where :mod:`benchmarks.port` finds it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import cli_main

REPO = Path(__file__).resolve().parents[1]
SCORE_TOLERANCE_BPD = 0.01          # bf16 vs float32, max |diff| per image, paper config on the GPU (issue 19)
SCORE_IMAGES = 2000                  # bf16 vs float32 scoring over at least this many images
DRY_IMAGE_SIZE = 8                   # the dry run's toy images (8x8x3)


def score_tolerance_bpd(image_size: int) -> float:
    """The bf16-vs-float32 limit on one image's bits/dim at ``image_size`` x ``image_size`` x 3.

    The GPU limit, ``SCORE_TOLERANCE_BPD``, is set for 32x32x3 images (D = 3072 subpixels).  An image's bits/dim
    is the mean of its D subpixel NLLs, and bf16's rounding errors in the network's outputs enter each subpixel's
    NLL roughly independently, so the error of the mean shrinks like 1/sqrt(D).  The same per-subpixel error budget
    at D subpixels therefore allows ``SCORE_TOLERANCE_BPD * sqrt(3072 / D)``: 0.04 bits/dim for the dry run's
    8x8x3 toy images.  The dry run's toy model also differs with the CPU's thread count (oneDNN's reduction order),
    which is why the dry run pins one thread: then the check is deterministic on a given machine and torch build.
    """
    return SCORE_TOLERANCE_BPD * (3 * 32 * 32 / (3 * image_size * image_size)) ** 0.5
TARGET_TRAIN_IMG_S = 1500.0          # paper-config bf16 train step at batch >= 64, one H200 (issue 19)
TARGET_SCORE_IMG_S = 5000.0          # paper-config bf16 scoring
TARGET_WRN_OE_EPOCH_S = 60.0
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"
CIFAR_TRAIN_IMAGES = 50_000
# Graph = eager.  The graph and eager runs execute the same kernels on the same batches with the same dropout
# masks (each replay draws from the generator state the per-step seed sets, as eager does); what may differ is
# the order of floating-point reductions in non-deterministic kernels (cuDNN convolution backward, atomics): float32
# roundings in the gradients, which Adam can turn into lr-sized moves of the few weights whose gradient is near
# zero (tests/test_compile.py bounds that on the CPU: <= 1% of the elements after 3 steps).  Over the check's 30
# steps at lr 1e-3 that moves the loss by well under 0.01 bits/dim; a real defect -- a stale batch buffer, a mask
# replayed unchanged, an EMA or learning-rate weight frozen at capture -- moves the train loss or the EMA's test
# bits/dim by more.
GRAPH_EAGER_TOLERANCE_BPD = 0.01
# Compile = eager: Inductor also fuses element-wise chains and keeps their intermediates in float32 where eager
# rounds them to bf16 between ops (2^-8 relative), which adds bf16-level differences to the network's output in
# every step; twice the graph tolerance.
COMPILE_EAGER_TOLERANCE_BPD = 0.02
COMPARE_STEPS, TIMING_STEPS = 30, 90          # density trainer steps of the comparison / of the timing run
QUICK_BUDGETS = {"capture": 90.0, "graph_eager": 90.0, "speed": 100.0, "cuda_tests": 80.0}   # 6 min in all
QUICK_SPEED_BATCHES = ("32", "64")
CAPTURE_FAILED = "CUDA graph capture of the"      # start of StepGraph's warning: an error in the benchmark's runs
FALLBACK_RANDOM_TRAIN = ("import sys, torch._inductor.config as c; c.fallback_random = True; "
                         "from oe_core.errors import cli_main; from density_oe.train import main; "
                         "sys.exit(cli_main(main, sys.argv[1:]))")
SCORE_GRAPH = re.compile(r"\(CUDA graph: ([^)]*)\)")
BAR = re.compile(r"\|\s*(\d+)/(\d+)\s*\[")          # a tqdm bar: "|  3/40 ["
PROGRESS = re.compile(r"\|\s*([1-9]\d*)/(\d+)\s*\[")   # ... with at least one finished step


@dataclass
class CheckConfig:
    """Run the one-call GPU check (or, with --dry-run, the same steps on the CPU at toy sizes)."""

    dry_run: bool = help_field(False, "run every step on the CPU at toy sizes, compile disabled (for CI)")
    quick: bool = help_field(False, "the first 6 minutes of a GPU session, top risks first: capture with the "
                                    "default loader workers, graph = eager, speed at batch 32 and 64 with the real "
                                    "trainer step, the CUDA tests (each step's budget printed)")
    out: str = help_field("", "folder for logs, runs and benchmark JSON (default: a new temporary folder)")
    device: str = help_field("cuda", "the GPU to check (ignored with --dry-run, which uses the CPU)")
    port_dir: str = help_field("", "pclucas14/pixel-cnn-pp clone for the benchmark (default: ../shared/anchors/"
                                   "pixel-cnn-pp next to this repository)")
    step_timeout: float = help_field(240.0, "seconds after which one step is killed and counted as failed")
    budget: float = help_field(450.0, "seconds for all steps together (each gets at most what is left)")
    results: str = help_field("", "where to write the results JSON (default: benchmarks/results/gpu.json; "
                                  "--dry-run: OUT/gpu.json)")

    def validate(self) -> None:
        require(self.step_timeout > 0, f"--step-timeout must be positive, got {self.step_timeout}")
        require(self.budget > 0, f"--budget must be positive, got {self.budget}")


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str
    logs: list[Path] = field(default_factory=list)
    budget: float = 0.0
    capture: str = "-"


def capture_verdict(expected: bool, statuses: Sequence[Optional[str]]) -> tuple[bool, str]:
    """Whether runs' CUDA-graph statuses (``captured``, ``eager: <why>``, ``warming up``, ``off``; ``None``: no
    capture attempted) are what the check expects, and the text of the row's capture column: on a GPU the
    density trainer, the scorer and the speed table's graph rows must capture; on CPUs nothing does."""
    seen = [s or "not attempted" for s in statuses] or ["not reported"]
    if not expected:
        return True, "not expected (" + "; ".join(dict.fromkeys(seen)) + ")"
    missed = [s for s in seen if s != "captured"]
    if missed:
        return False, "**NOT captured**: " + "; ".join(dict.fromkeys(missed))
    return True, "captured" + (f" ({len(seen)} runs)" if len(seen) > 1 else "")


def epoch_seconds_per_step(short: dict, long: dict, steps: tuple[int, int]) -> float:
    """The trainer's steady per-step seconds from the epoch times (``time_s``) of two runs that differ only in
    their number of steps: start-up, warm-up and capture cancel."""
    return (long["time_s"] - short["time_s"]) / (steps[1] - steps[0])


class Checker:
    def __init__(self, cfg: CheckConfig, out: Path):
        self.cfg, self.out = cfg, out
        self.device = "cpu" if cfg.dry_run else cfg.device
        self.steps: list[Step] = []
        self.bench: list[dict] = []
        self.bench_json: Optional[dict] = None
        self.speed: Optional[dict] = None
        self.precision: Optional[dict] = None
        self.graph_eager: Optional[dict] = None
        self.trainer_step: Optional[dict] = None
        self.expect_capture = not cfg.dry_run
        self.deadline = time.time() + (sum(QUICK_BUDGETS.values()) if cfg.quick else cfg.budget)
        self.step_deadline, self.step_budget = float("inf"), 0.0
        self.env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    "MPLBACKEND": "Agg"}
        if cfg.dry_run:   # one thread: the toy runs and their bf16-vs-float32 difference do not depend on the CPU
            self.env["OMP_NUM_THREADS"] = "1"
            self.env["TORCH_COMPILE_DISABLE"] = "1"   # the compile comparison's plumbing, not Inductor's minutes

    # ---------------------------------------------------------------- processes
    def _cmd(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    def begin(self, name: str, budget: float = 0.0) -> float:
        """Start a step: its own budget (``--quick``; 0: what is left of the check's), printed; returns the start."""
        now = time.time()
        self.step_budget = min(budget, self.deadline - now) if budget else max(0.0, self.deadline - now)
        self.step_deadline = now + self.step_budget
        print(f"[gpu_check] {name}: budget {self.step_budget:.0f} s ({self.deadline - now:.0f} s left in all)",
              file=sys.stderr, flush=True)
        return now

    def timeout(self) -> float:
        """This step's time limit: the step timeout, its own budget or what is left of the check's, the least."""
        now = time.time()
        return max(1.0, min(self.cfg.step_timeout, self.deadline - now, self.step_deadline - now))

    def run(self, log: Path, cmd: list[str], env: Optional[dict] = None) -> int:
        """Run ``cmd`` to the end (or the step's time limit), stdout and stderr into ``log``."""
        limit = self.timeout()
        with log.open("w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            try:
                return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=env or self.env,
                                      timeout=limit).returncode
            except subprocess.TimeoutExpired:
                f.write(f"\n[gpu_check] killed after {limit:.0f} s (step timeout or the check's budget)\n")
                return 124

    def run_interrupted(self, log: Path, cmd: list[str]) -> tuple[int, int]:
        """Start ``cmd``; SIGTERM it once its progress bar shows a finished step; return ``(steps done when
        signalled, exit code)``.  ``(0, rc)``: it ended before any step showed."""
        with log.open("w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, env=self.env)
            seen = threading.Event()
            done_at = [0]

            def pump() -> None:
                buf = ""
                assert proc.stdout is not None
                while True:
                    chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(1)
                    if not chunk:
                        return
                    text = chunk.decode(errors="replace")
                    f.write(text)
                    buf = (buf + text)[-400:]
                    m = PROGRESS.search(buf)
                    if m and not seen.is_set():
                        done_at[0] = int(m.group(1))
                        seen.set()

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            deadline = time.time() + self.timeout()
            while proc.poll() is None and not seen.is_set() and time.time() < deadline:
                seen.wait(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            reader.join(timeout=5)
            return done_at[0], rc

    # ---------------------------------------------------------------- steps
    def record(self, name: str, t0: float, ok: bool, detail: str, logs: list[Path], capture: str = "-") -> bool:
        self.steps.append(Step(name, ok, time.time() - t0, detail, logs, self.step_budget, capture))
        return ok

    def cuda_tests(self, budget: float = 0.0) -> None:
        t0, log = self.begin("CUDA tests", budget), self.out / "cuda_tests.log"
        rc = self.run(log, self._cmd("pytest", "-m", "cuda", "-rs", "-q", "-p", "no:cacheprovider",
                                     str(REPO / "tests")))
        text = log.read_text()
        summary = next((ln.strip("= ") for ln in reversed(text.splitlines()) if re.search(r"\d+ (passed|skipped|"
                                                                                         r"failed|error)", ln)), "")
        skips = sorted({m.group(1).strip() for m in re.finditer(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", text)})
        detail = summary + ("; skipped because: " + "; ".join(skips) if skips else "")
        self.record("CUDA tests (`pytest -m cuda`)", t0, rc == 0, detail or f"exit code {rc}", [log])

    def benchmark(self) -> None:
        """The suite's fast path (bf16, channels_last, CUDA graphs) against the port, side by side in one run."""
        t0, amp = self.begin("benchmark"), "bf16"
        log, js = self.out / "bench-bf16.log", self.out / "bench-bf16.json"
        args = ["--device", self.device, "--amp", amp, "--no-linearity", "--json", str(js)]
        if self.cfg.port_dir:
            args += ["--port-dir", self.cfg.port_dir]
        if self.cfg.dry_run:
            args += ["--quick", "--threads", "1", "--repeats", "1", "--cases", "train_paper", "score"]
        else:
            args += ["--channels-last", "--cuda-graphs", "--repeats", "10", "--case-seconds", "20", "--cases",
                     "train_paper", "score", "wrn_oe_step"]
        # a capture that falls back to eager only warns; here it is an error, so the benchmark cannot pass on eager
        strict = {**self.env, "PYTHONWARNINGS": ",".join(filter(None, [self.env.get("PYTHONWARNINGS"),
                                                                       f"error:{CAPTURE_FAILED}:UserWarning"]))}
        rc = self.run(log, self._cmd("benchmarks.run", *args), env=strict)
        ok = rc == 0 and js.exists()
        if ok:
            self.bench_json = json.loads(js.read_text())
            for name, case in self.bench_json["cases"].items():
                self.bench.append({"amp": amp, "case": name, "detail": case["detail"], "baseline": case["baseline"],
                                   "fast": case["fast"]["images_per_s"], "base": case["base"]["images_per_s"],
                                   "speedup": case["speedup"]})
        what = "" if self.cfg.dry_run else ", channels_last, CUDA graphs"
        self.record(f"benchmark, amp {amp}{what}, against the port", t0, ok,
                    f"{len(self.bench)} cases" if ok else f"exit code {rc}", [log],
                    "a failed capture is an error here" if not self.cfg.dry_run else "not expected (CPU)")

    def gpu_speed(self, budget: float = 0.0) -> None:
        """The speed table (``--quick``: batches 32 and 64, no modes), then the real trainer step next to it."""
        t0, log, js = self.begin("GPU speed", budget), self.out / "gpu_speed.log", self.out / "gpu_speed.json"
        args = ["--json", str(js), *(["--dry-run"] if self.cfg.dry_run else ["--device", self.device])]
        if self.cfg.quick:
            args += ["--batches", *QUICK_SPEED_BATCHES, "--no-modes"]
        rc = self.run(log, self._cmd("benchmarks.gpu_speed", *args))
        if js.exists():
            self.speed = json.loads(js.read_text())
        ok = rc == 0 and self.speed is not None
        statuses = []
        if self.speed:
            statuses = [row["graph"].get("captured") for row in self.speed["batch_table"] if "graph" in row]
            statuses += [r.get("captured") for name, r in self.speed["modes"].items() if "graph" in name]
        captured, capture = capture_verdict(self.expect_capture, statuses)
        detail = (f"{len(self.speed['batch_table'])} batch sizes, {len(self.speed['modes'])} mode rows"
                  if self.speed else "no results") + ("" if rc == 0 else f"; exit code {rc} (partial results kept)")
        skipped = [f"batch {r['batch']} {r['skipped']}" for r in (self.speed or {}).get("batch_table", [])
                   if "skipped" in r]
        detail += "".join(f"; {x}" for x in skipped)
        self.record("GPU speed: batch table, eager vs compile vs CUDA graphs, kernels per step", t0,
                    ok and captured, detail, [log], capture)
        self.trainer_timing()

    def trainer_timing(self) -> None:
        """The real trainer step (EMA, logging, data with the default workers, readback) from two density runs of
        different lengths, next to the bare step of the speed table at the same batch."""
        t0, log = time.time(), self.out / "pcnn-timing.log"
        name = "real trainer step vs the bare step (EMA, logging, data; default workers)"
        short = self._rows(self.out / "pcnn-graph")
        steps = self._compare_steps(), self._compare_steps() * 3
        rc = self.run(log, self._density_cmd(self.out / "pcnn-timing", steps[1], "auto"))
        long = self._rows(self.out / "pcnn-timing")
        if rc != 0 or not short or not long:
            self.record(name, t0, False, f"exit code {rc}" if rc else "no graph-run epoch row to difference "
                        "(the graph = eager step failed)", [log])
            return
        per = epoch_seconds_per_step(short[-1], long[-1], steps)
        batch = self._density_batch()
        bare = self._bare_step(batch)
        ratio = (1e3 * per / bare["ms_per_step"]) if bare and per > 0 else None
        self.trainer_step = {"batch": batch, "steps": list(steps), "trainer_ms_per_step": 1e3 * per,
                             "trainer_images_per_s": batch / per if per > 0 else None, "bare": bare, "ratio": ratio}
        ok, capture = capture_verdict(self.expect_capture, [long[-1].get("cuda_graph")])
        shown = f"{ratio:.2f}x the bare step ({bare['ms_per_step']:.1f} ms, {bare['what']})" if ratio else \
            "no bare step measured"
        dry = " (dry run: toy sizes on a shared CPU, the ratio means nothing)" if self.cfg.dry_run else ""
        self.record(name, t0, ok and per > 0, f"batch {batch}: {1e3 * per:.1f} ms per step ((t{steps[1]} - "
                    f"t{steps[0]}) / {steps[1] - steps[0]}), {shown}{dry}", [log], capture)

    def _bare_step(self, batch: int) -> Optional[dict]:
        """The speed table's row at ``batch`` (else the largest measured): the CUDA graph cell where it ran."""
        rows = [r for r in (self.speed or {}).get("batch_table", [])
                if "ms_per_step" in r.get("graph", {}) or "ms_per_step" in r.get("eager", {})]
        if not rows:
            return None
        row = next((r for r in rows if r["batch"] == batch), rows[-1])
        cell = "graph" if "ms_per_step" in row.get("graph", {}) else "eager"
        return {"batch": row["batch"], "ms_per_step": row[cell]["ms_per_step"],
                "what": f"gpu_speed batch {row['batch']}, {'CUDA graph' if cell == 'graph' else 'eager'}"}

    # ---------------------------------------------------------------- the density trainer's short runs
    def _density_batch(self) -> int:
        return 8 if self.cfg.dry_run else 64

    def _compare_steps(self) -> int:
        return 6 if self.cfg.dry_run else COMPARE_STEPS

    def _density_args(self, steps: int) -> list[str]:
        dry = self.cfg.dry_run
        return ["--mode", "baseline", "--dataset", "mini-id", "--epochs", "1", "--seed", "1",
                "--limit-steps", str(steps), "--eval-images", "32" if dry else "500",
                "--batch-size", str(self._density_batch()),
                *(["--nr-filters", "8", "--nr-resnet", "1", "--nr-logistic-mix", "2", "--test-batch-size", "16",
                   "--image-size", str(DRY_IMAGE_SIZE)] if dry else [])]

    def _density_cmd(self, out: Path, steps: int, graphs: str, compiled: bool = False) -> list[str]:
        """A short density run with the default loader workers and dropout (0.5), EMA 0.9 (so that the final test
        bits/dim reads weights of these steps, not the initialisation)."""
        args = ["--out", str(out), "--device", self.device, "--amp", "bf16", "--channels-last", "--no-progress",
                "--no-resume", "--cuda-graphs", graphs, "--ema-decay", "0.9", *self._density_args(steps)]
        if compiled:
            return [sys.executable, "-c", FALLBACK_RANDOM_TRAIN, *args, "--compile"]
        return self._cmd("density_oe.train", *args)

    @staticmethod
    def _rows(run: Path) -> list[dict]:
        metrics = run / "metrics.json"
        return json.loads(metrics.read_text()) if metrics.exists() else []

    def graph_equals_eager(self, budget: float = 0.0, compiled: bool = True) -> None:
        """The density trainer with CUDA graphs (auto) and without, same seed, dropout on: the epoch's losses and
        the final test bits/dim agree within GRAPH_EAGER_TOLERANCE_BPD; with ``compiled`` the same for
        ``--compile`` (network and likelihood) within COMPILE_EAGER_TOLERANCE_BPD."""
        t0 = self.begin("graph = eager", budget)
        name = "graph = eager (density trainer, dropout on)" + (", and compile = eager" if compiled else "")
        steps, keys = self._compare_steps(), ("train_loss", "train_bpd", "test_bpd")
        runs = {"graph": ("auto", False), "eager": ("off", False)}
        if compiled:
            runs["compile"] = ("off", True)
        rows, logs = {}, []
        for run, (graphs, comp) in runs.items():
            log = self.out / f"pcnn-{run}.log"
            logs.append(log)
            rc = self.run(log, self._density_cmd(self.out / f"pcnn-{run}", steps, graphs, comp))
            got = self._rows(self.out / f"pcnn-{run}")
            if rc != 0 or not got:
                self.record(name, t0, False, f"the {run} run failed (exit code {rc})", logs)
                return
            rows[run] = got[-1]
        self.graph_eager = {"steps": steps, "keys": list(keys), "runs": rows, "comparisons": {}}
        ok_all, parts = True, []
        for run, tol in (("graph", GRAPH_EAGER_TOLERANCE_BPD), ("compile", COMPILE_EAGER_TOLERANCE_BPD)):
            if run not in rows:
                continue
            diff = max(abs(rows[run][k] - rows["eager"][k]) for k in keys)
            ok = diff <= tol
            ok_all &= ok
            self.graph_eager["comparisons"][run] = {"max_abs_diff_bpd": diff, "tolerance": tol, "ok": ok}
            parts.append(f"{run} vs eager: max |diff| {diff:.5f} (limit {tol}; train loss "
                         f"{rows[run]['train_loss']:.4f} vs {rows['eager']['train_loss']:.4f}, test bpd "
                         f"{rows[run]['test_bpd']:.4f} vs {rows['eager']['test_bpd']:.4f})")
        captured, capture = capture_verdict(self.expect_capture, [rows["graph"].get("cuda_graph")])
        dry = " (dry run: no graphs on CPUs, compile disabled -- both sides eager)" if self.cfg.dry_run else ""
        self.record(name, t0, ok_all and captured, f"{steps} steps, seed 1: " + "; ".join(parts) + dry, logs,
                    capture)

    def _trainer(self, name: str, module: str, out: Path, args: list[str], capture: bool) -> bool:
        """SIGTERM + resume of one trainer with its default loader workers; ``capture``: it must capture its step
        on a GPU (the run's epoch row says whether it did)."""
        t0 = time.time()
        cmd = self._cmd(module, "--out", str(out), "--device", self.device, "--amp", "bf16", "--channels-last",
                        *args)
        first, second = self.out / f"{out.name}-interrupted.log", self.out / f"{out.name}-resumed.log"
        done, rc1 = self.run_interrupted(first, cmd)
        if rc1 != 75:
            return self.record(name, t0, False, f"expected exit code 75 after SIGTERM at step {done}, got {rc1}",
                               [first])
        rc2 = self.run(second, cmd)
        metrics = out / "metrics.json"
        rows = json.loads(metrics.read_text()) if metrics.exists() else []
        bar = BAR.search(second.read_text(errors="replace"))        # the resumed bar starts where the run stopped
        start = int(bar.group(1)) if bar else 0
        ok = rc2 == 0 and len(rows) == 1 and start >= 1
        detail = (f"SIGTERM after step {done}: exit 75, checkpoint written; the rerun resumed at step {start} and "
                  f"finished the epoch ({', '.join(f'{k} {v:.4g}' for k, v in rows[-1].items() if k.startswith('test'))})"
                  if ok else f"resume: exit code {rc2}, {len(rows)} epoch rows, resumed at step {start}")
        captured, verdict = capture_verdict(capture and self.expect_capture,
                                            [rows[-1].get("cuda_graph") if rows else None])
        return self.record(name, t0, ok and captured, detail, [first, second], verdict)

    def density_capture(self, budget: float = 0.0) -> Optional[Path]:
        """Step 3's density run: capture with the default loader workers, SIGTERM and resume."""
        self.begin("density trainer (capture with the default workers)", budget)
        dry = self.cfg.dry_run
        density = self.out / "pcnn"
        pcnn = ["--mode", "baseline", "--dataset", "mini-id", "--epochs", "1", "--seed", "1",
                "--limit-steps", "40" if dry else "60", "--eval-images", "32" if dry else "500",
                *(["--nr-filters", "8", "--nr-resnet", "1", "--nr-logistic-mix", "2", "--batch-size", "8",
                   "--test-batch-size", "16", "--image-size", str(DRY_IMAGE_SIZE)] if dry else ["--batch-size", "64"])]
        ok = self._trainer("density trainer: bf16, channels_last, default workers, CUDA graph, SIGTERM + resume",
                           "density_oe.train", density, pcnn, capture=True)
        return density if ok else None

    def trainers(self) -> Optional[Path]:
        self.begin("classifier trainer")
        dry = self.cfg.dry_run
        size = ["--image-size", str(DRY_IMAGE_SIZE)] if dry else []
        cls = ["--mode", "baseline", "--dataset", "mini-id", "--arch", "wrn", "--epochs", "1", "--seed", "1",
               "--limit-steps", "40" if dry else "60", *(["--depth", "10", "--widen-factor", "1"] if dry else
                                                         ["--depth", "40", "--widen-factor", "2"]), *size]
        self._trainer("classifier trainer: bf16, channels_last, default workers, SIGTERM + resume",
                      "classifiers_oe.train", self.out / "clf", cls, capture=False)
        return self.density_capture()

    def annotate_scoring(self) -> None:
        """The scoring row's capture column, from the scorer's own line in each log (``(CUDA graph: ...)``); on a
        GPU a scorer that did not capture fails the row."""
        step = next((s for s in self.steps if s.name.startswith("bpd scoring")), None)
        if step is None or not step.logs:
            return
        statuses = []
        for log in step.logs:
            m = SCORE_GRAPH.search(log.read_text(errors="replace")) if log.exists() else None
            statuses.append(m.group(1) if m else None)
        ok, step.capture = capture_verdict(self.expect_capture, statuses)
        if not ok and step.ok:
            step.ok, step.detail = False, step.detail + "; the scorer did not capture"

    def scoring(self, run: Optional[Path]) -> None:
        t0 = time.time()
        if run is None:
            self.record("bpd scoring, bf16 vs float32", t0, False, "no trained density run (previous step failed)",
                        [])
            return
        files, logs = {}, []
        for amp in ("none", "bf16"):
            files[amp] = self.out / f"scores-{amp}.npy"
            log = self.out / f"score-{amp}.log"
            logs.append(log)
            args = ["--ckpt", str(run), "--dataset", "mini-id", "--split", "test", "--device", self.device,
                    "--amp", amp, "--weights", "train", "--num-workers", "0", "--out", str(files[amp])]
            if self.cfg.dry_run:
                args += ["--image-size", str(DRY_IMAGE_SIZE), "--limit", "64"]
            else:   # the test split has 1000 images: score training images (the precision check needs 2000)
                args[args.index("test")] = "train"
                args += ["--limit", str(SCORE_IMAGES), "--batch-size", "256", "--channels-last"]
            if self.run(log, self._cmd("density_oe.score", *args)) != 0:
                self.record("bpd scoring, bf16 vs float32", t0, False, f"scoring with --amp {amp} failed", logs)
                return
        a, b = np.load(files["none"]), np.load(files["bf16"])
        diff = float(np.abs(a - b).max())
        limit = score_tolerance_bpd(DRY_IMAGE_SIZE if self.cfg.dry_run else 32)
        self.precision = {"images": len(a), "mean_bpd_fp32": float(a.mean()), "mean_bpd_bf16": float(b.mean()),
                          "max_abs_diff_bpd": diff, "mean_abs_diff_bpd": float(np.abs(a - b).mean()),
                          "tolerance": limit, "ok": diff <= limit}
        self.record("bpd scoring, bf16 vs float32", t0, diff <= limit,
                    f"{len(a)} images, mean {a.mean():.4f} (float32) vs {b.mean():.4f} (bf16) bits/dim, max |diff| "
                    f"{diff:.5f} (limit {limit:.3g})", logs)

    # ---------------------------------------------------------------- report
    def markdown(self, wall: float) -> str:
        import torch

        from oe_core.run import cpu_model
        gpu = (torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU")
        mode = "dry run on the CPU (toy sizes, compile disabled, no CUDA graphs)" if self.cfg.dry_run else \
            f"device {self.device}"
        if self.cfg.quick:
            mode += f", --quick (budget {sum(QUICK_BUDGETS.values()):.0f} s)"
        lines = [f"## GPU check: {gpu} -- {mode}", "",
                 f"- machine: {gpu}; CPU {cpu_model()}; torch {torch.__version__}; {wall:.0f} s in all",
                 f"- logs and runs: `{self.out}`; results: `{self.results_path()}`", "",
                 "| step | result | seconds | budget s | CUDA graph capture | detail |", "|---|---|---|---|---|---|"]
        lines += [f"| {s.name} | {'ok' if s.ok else '**FAILED**'} | {s.seconds:.0f} | {s.budget:.0f} | {s.capture} | "
                  f"{s.detail} |" for s in self.steps]
        if self.bench:
            lines += ["", "| case | amp | density_oe images/s | baseline | baseline images/s | speed-up |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {r['case']} ({r['detail']}) | {r['amp']} | {r['fast']:.1f} | {r['baseline']} | "
                      f"{r['base']:.1f} | {r['speedup']:.2f}x |" for r in self.bench]
        lines += self._speed_tables()
        lines += self._trainer_table()
        lines += ["", "Targets (GPU only): " + "; ".join(t["text"] for t in self.targets())]
        return "\n".join(lines) + "\n"

    def _speed_tables(self) -> list[str]:
        sp = self.speed
        if not sp:
            return []
        lines = ["", "| train step batch | eager images/s (ms) | CUDA graph images/s (ms) | capture | peak GiB |",
                 "|---|---|---|---|---|"]

        def cell(r: Optional[dict]) -> str:
            if not r:
                return "-"
            return r["error"] if "error" in r else f"{r['images_per_s']:.0f} ({r['ms_per_step']:.1f})"
        for row in sp["batch_table"]:
            if "skipped" in row:
                lines.append(f"| {row['batch']} | {row['skipped']} | - | - | - |")
                continue
            peak = f"{row['peak_gib']:.1f}" if "peak_gib" in row else "-"
            lines.append(f"| {row['batch']} | {cell(row.get('eager'))} | {cell(row.get('graph'))} | "
                         f"{(row.get('graph') or {}).get('captured') or 'not attempted (no CUDA)'} | {peak} |")
        if sp["modes"]:
            lines += ["", "| mode | images/s | ms per step | warm-up s (compile, capture) | capture |",
                      "|---|---|---|---|---|"]
            lines += [f"| {name} | {r['images_per_s']:.0f} | {r['ms_per_step']:.1f} | {r['warmup_s']:.1f} | "
                      f"{r.get('captured') or '-'} |" for name, r in sp["modes"].items()]
        if sp["per_step"]:
            lines += ["", "| train step | CUDA kernels | aten ops (all levels) | NCHW/NHWC transposes |",
                      "|---|---|---|---|"]
            lines += [f"| {name} | {c['cuda_kernels']} | {c['aten_ops']} | {c['layout_transposes']} |"
                      for name, c in sp["per_step"].items()]
        return lines

    def _trainer_table(self) -> list[str]:
        ts = self.trainer_step
        if not ts:
            return []
        lines = ["", f"| train step, batch {ts['batch']} | ms per step | images/s |", "|---|---|---|"]
        if ts["bare"]:
            b = ts["bare"]
            lines.append(f"| bare step ({b['what']}) | {b['ms_per_step']:.1f} | {ts['batch'] / b['ms_per_step'] * 1e3:.0f} |")
        ips = ts["trainer_images_per_s"]
        lines.append(f"| real trainer step (EMA, logging, data, default workers) | {ts['trainer_ms_per_step']:.1f} | "
                     f"{ips:.0f} |" if ips else f"| real trainer step | {ts['trainer_ms_per_step']:.1f} | - |")
        if ts["ratio"]:
            lines.append(f"| ratio trainer / bare | {ts['ratio']:.2f}x | |")
        return lines

    def targets(self) -> list[dict]:
        """The issue's GPU targets with the measured values (``met`` is ``None`` where nothing was measured)."""
        cases = (self.bench_json or {}).get("cases", {})
        out = []

        def target(name: str, value: Optional[float], need: float, unit: str, higher: bool = True,
                   extra: str = "") -> None:
            met = None if value is None else (value >= need if higher else value <= need)
            shown = "not measured" if value is None else f"{value:.0f} {unit}"
            out.append({"target": name, "value": value, "need": need, "met": met,
                        "text": f"{name} {shown} ({'>=' if higher else '<'} {need:.0f}{extra}: "
                                f"{'met' if met else 'NOT met' if met is not None else 'not measured'})"})

        train, score = cases.get("train_paper"), cases.get("score")
        batch = train["images_per_call"] if train else 0
        target(f"paper-config bf16 train step, batch {batch}", train["fast"]["images_per_s"] if train and batch >= 64
               else None, TARGET_TRAIN_IMG_S, "images/s", extra=f"; the port {train['base']['images_per_s']:.0f}"
               if train else "")
        target("paper-config bf16 scoring", score["fast"]["images_per_s"] if score else None, TARGET_SCORE_IMG_S,
               "images/s", extra=f"; the port {score['base']['images_per_s']:.0f}" if score else "")
        wrn = cases.get("wrn_oe_step")
        target("WRN-40-2 OE epoch (50,000 images + 2x outliers)", CIFAR_TRAIN_IMAGES * 3 /
               wrn["fast"]["images_per_s"] if wrn else None, TARGET_WRN_OE_EPOCH_S, "s", higher=False)
        return out

    def results_path(self) -> Path:
        if self.cfg.results:
            return Path(self.cfg.results)
        if self.cfg.quick:
            return self.out / "gpu-quick.json"
        return self.out / "gpu.json" if self.cfg.dry_run else RESULTS

    def write_results(self) -> Optional[Path]:
        """The benchmark's JSON (the format of cpu.json) with the speed table, the precision check, graph = eager,
        the real trainer step and the targets added; nothing when the benchmark did not run (``--quick``: no
        benchmark, the rest alone)."""
        if self.bench_json is None and not self.cfg.quick:
            return None
        path = self.results_path()
        results = {**(self.bench_json or {}), "gpu_speed": self.speed, "score_precision": self.precision,
                   "graph_eager": self.graph_eager, "trainer_step": self.trainer_step,
                   "gpu_targets": [{k: v for k, v in t.items() if k != "text"} for t in self.targets()],
                   "gpu_check_steps": [{"name": s.name, "ok": s.ok, "seconds": round(s.seconds, 1),
                                        "budget_s": round(s.budget, 1), "capture": s.capture, "detail": s.detail}
                                       for s in self.steps]}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(results, indent=1) + "\n")
        return path


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(CheckConfig, argv, prog="python -m benchmarks.gpu_check")
    if not cfg.dry_run:
        import torch
        if not torch.cuda.is_available():
            print("error: gpu_check needs a CUDA GPU and torch sees none (use --dry-run to check the script on a "
                  "CPU)", file=sys.stderr)
            return 2
    out = Path(cfg.out) if cfg.out else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    checker, t0 = Checker(cfg, out), time.time()
    if cfg.quick:       # the top risks first, each in its own budget
        checker.density_capture(QUICK_BUDGETS["capture"])
        checker.graph_equals_eager(QUICK_BUDGETS["graph_eager"], compiled=False)
        checker.gpu_speed(QUICK_BUDGETS["speed"])
        checker.cuda_tests(QUICK_BUDGETS["cuda_tests"])
    else:
        checker.cuda_tests()
        checker.benchmark()
        run = checker.trainers()
        checker.graph_equals_eager()
        checker.begin("bpd scoring")
        checker.scoring(run)
        checker.annotate_scoring()
        checker.gpu_speed()
    checker.write_results()
    print(checker.markdown(time.time() - t0), flush=True)
    failed = [s for s in checker.steps if not s.ok]
    for s in failed:
        for log in s.logs:
            if log.exists():
                tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
                print(f"\n---- FAILED: {s.name}: last lines of {log}\n{tail}", file=sys.stderr)
    if failed:
        print(f"gpu_check: {len(failed)} of {len(checker.steps)} steps FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
