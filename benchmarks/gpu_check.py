"""``python -m benchmarks.gpu_check`` (``scripts/gpu_check.sh``): the GPU checks of the suite in one call,
at most 8 minutes (``--budget``: each step gets what is left; a step past it is killed and reported).

Steps, each in its own process, every log kept under ``--out``, in order of importance:

1. the CUDA tests (``pytest -m cuda``; skipped tests and their reasons are reported);
2. the benchmark against the pclucas14 port in bf16 with the fast path (channels_last, the whole train step and
   the scoring batch as CUDA graphs): paper-config train step at batch 64 (the port's default), scoring at batch
   256, the WRN-40-2 OE step; the port runs as written, in float32;
3. one short epoch of each trainer with ``--amp bf16 --channels-last`` (the density trainer captures its step:
   ``--cuda-graphs auto``), interrupted by SIGTERM once the progress bar shows a finished step, then resumed by
   rerunning the same command to the end;
4. bpd scoring of the trained density run in bf16 and in float32 on the same weights, over 2000 images (must agree
   within 0.01 per image; the dry run's 8x8 toy within the limit :func:`score_tolerance_bpd` derives); the run's training weights (``--weights train``): after one short epoch its EMA is still mostly
   the initialisation, a degenerate model whose bits/dim no precision reproduces;
5. :mod:`benchmarks.gpu_speed`: the train-step batch table (32/64/128/256, eager and CUDA graph), eager vs
   ``torch.compile`` vs CUDA graph vs both for the train step and scoring, and kernels, aten ops and layout
   transposes per step (compile last: its compile time is the least predictable).

Writes ``benchmarks/results/gpu.json`` (``--results``): the benchmark's JSON in the format of ``cpu.json`` plus
``gpu_speed``, ``score_precision`` and ``gpu_targets`` (train step >= 1500 images/s at batch 64, scoring >= 5000
images/s).  Prints one markdown summary on stdout and exits 1 if any step failed (the failing logs' tails go to
stderr).  ``--dry-run`` runs the same steps on the CPU at toy sizes (no compile, no graphs), writing its JSON under
``--out`` only, so CI proves the script works before a GPU is ever lent.

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
from oe_core.config import help_field, parse_config, require
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
BAR = re.compile(r"\|\s*(\d+)/(\d+)\s*\[")          # a tqdm bar: "|  3/40 ["
PROGRESS = re.compile(r"\|\s*([1-9]\d*)/(\d+)\s*\[")   # ... with at least one finished step


@dataclass
class CheckConfig:
    """Run the one-call GPU check (or, with --dry-run, the same steps on the CPU at toy sizes)."""

    dry_run: bool = help_field(False, "run every step on the CPU at toy sizes, without --compile (for CI)")
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


class Checker:
    def __init__(self, cfg: CheckConfig, out: Path):
        self.cfg, self.out = cfg, out
        self.device = "cpu" if cfg.dry_run else cfg.device
        self.steps: list[Step] = []
        self.bench: list[dict] = []
        self.bench_json: Optional[dict] = None
        self.speed: Optional[dict] = None
        self.precision: Optional[dict] = None
        self.deadline = time.time() + cfg.budget
        self.env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    "MPLBACKEND": "Agg"}
        if cfg.dry_run:   # one thread: the toy runs and their bf16-vs-float32 difference do not depend on the CPU
            self.env["OMP_NUM_THREADS"] = "1"

    # ---------------------------------------------------------------- processes
    def _cmd(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    def timeout(self) -> float:
        """This step's time limit: the step timeout or what is left of the budget, whichever is less."""
        return max(1.0, min(self.cfg.step_timeout, self.deadline - time.time()))

    def run(self, log: Path, cmd: list[str]) -> int:
        """Run ``cmd`` to the end (or the step's time limit), stdout and stderr into ``log``."""
        limit = self.timeout()
        with log.open("w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            try:
                return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=self.env,
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
    def record(self, name: str, t0: float, ok: bool, detail: str, logs: list[Path]) -> bool:
        self.steps.append(Step(name, ok, time.time() - t0, detail, logs))
        return ok

    def cuda_tests(self) -> None:
        t0, log = time.time(), self.out / "cuda_tests.log"
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
        t0, amp = time.time(), "bf16"
        log, js = self.out / "bench-bf16.log", self.out / "bench-bf16.json"
        args = ["--device", self.device, "--amp", amp, "--no-linearity", "--json", str(js)]
        if self.cfg.port_dir:
            args += ["--port-dir", self.cfg.port_dir]
        if self.cfg.dry_run:
            args += ["--quick", "--threads", "1", "--repeats", "1", "--cases", "train_paper", "score"]
        else:
            args += ["--channels-last", "--cuda-graphs", "--repeats", "10", "--case-seconds", "20", "--cases",
                     "train_paper", "score", "wrn_oe_step"]
        rc = self.run(log, self._cmd("benchmarks.run", *args))
        ok = rc == 0 and js.exists()
        if ok:
            self.bench_json = json.loads(js.read_text())
            for name, case in self.bench_json["cases"].items():
                self.bench.append({"amp": amp, "case": name, "detail": case["detail"], "baseline": case["baseline"],
                                   "fast": case["fast"]["images_per_s"], "base": case["base"]["images_per_s"],
                                   "speedup": case["speedup"]})
        what = "" if self.cfg.dry_run else ", channels_last, CUDA graphs"
        self.record(f"benchmark, amp {amp}{what}, against the port", t0, ok,
                    f"{len(self.bench)} cases" if ok else f"exit code {rc}", [log])

    def gpu_speed(self) -> None:
        t0, log, js = time.time(), self.out / "gpu_speed.log", self.out / "gpu_speed.json"
        rc = self.run(log, self._cmd("benchmarks.gpu_speed", "--json", str(js),
                                     *(["--dry-run"] if self.cfg.dry_run else ["--device", self.device])))
        if js.exists():
            self.speed = json.loads(js.read_text())
        ok = rc == 0 and self.speed is not None
        detail = (f"{len(self.speed['batch_table'])} batch sizes, {len(self.speed['modes'])} mode rows"
                  if self.speed else "no results") + ("" if rc == 0 else f"; exit code {rc} (partial results kept)")
        self.record("GPU speed: batch table, eager vs compile vs CUDA graphs, kernels per step", t0, ok, detail,
                    [log])

    def _trainer(self, name: str, module: str, out: Path, args: list[str]) -> bool:
        t0 = time.time()
        cmd = self._cmd(module, "--out", str(out), "--device", self.device, "--amp", "bf16", "--channels-last",
                        "--num-workers", "0", *args)
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
        return self.record(name, t0, ok, detail, [first, second])

    def trainers(self) -> Optional[Path]:
        dry = self.cfg.dry_run
        size = ["--image-size", str(DRY_IMAGE_SIZE)] if dry else []
        cls = ["--mode", "baseline", "--dataset", "mini-id", "--arch", "wrn", "--epochs", "1", "--seed", "1",
               "--limit-steps", "40" if dry else "60", *(["--depth", "10", "--widen-factor", "1"] if dry else
                                                         ["--depth", "40", "--widen-factor", "2"]), *size]
        self._trainer("classifier trainer: bf16, channels_last, SIGTERM + resume", "classifiers_oe.train",
                      self.out / "clf", cls)
        density = self.out / "pcnn"
        pcnn = ["--mode", "baseline", "--dataset", "mini-id", "--epochs", "1", "--seed", "1",
                "--limit-steps", "40" if dry else "60", "--eval-images", "32" if dry else "500",
                *(["--nr-filters", "8", "--nr-resnet", "1", "--nr-logistic-mix", "2", "--batch-size", "8",
                   "--test-batch-size", "16"] if dry else ["--batch-size", "64"]), *size]
        ok = self._trainer("density trainer: bf16, channels_last, SIGTERM + resume", "density_oe.train", density,
                           pcnn)
        return density if ok else None

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
        mode = "dry run on the CPU (toy sizes, no compile, no CUDA graphs)" if self.cfg.dry_run else \
            f"device {self.device}"
        lines = [f"## GPU check: {gpu} -- {mode}", "",
                 f"- machine: {gpu}; CPU {cpu_model()}; torch {torch.__version__}; {wall:.0f} s in all",
                 f"- logs and runs: `{self.out}`; results: `{self.results_path()}`", "",
                 "| step | result | seconds | detail |", "|---|---|---|---|"]
        lines += [f"| {s.name} | {'ok' if s.ok else '**FAILED**'} | {s.seconds:.0f} | {s.detail} |"
                  for s in self.steps]
        if self.bench:
            lines += ["", "| case | amp | density_oe images/s | baseline | baseline images/s | speed-up |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {r['case']} ({r['detail']}) | {r['amp']} | {r['fast']:.1f} | {r['baseline']} | "
                      f"{r['base']:.1f} | {r['speedup']:.2f}x |" for r in self.bench]
        lines += self._speed_tables()
        lines += ["", "Targets (GPU only): " + "; ".join(t["text"] for t in self.targets())]
        return "\n".join(lines) + "\n"

    def _speed_tables(self) -> list[str]:
        sp = self.speed
        if not sp:
            return []
        lines = ["", "| train step batch | eager images/s (ms) | CUDA graph images/s (ms) |", "|---|---|---|"]
        cell = lambda r: f"{r['images_per_s']:.0f} ({r['ms_per_step']:.1f})" if r else "-"
        lines += [f"| {row['batch']} | {cell(row.get('eager'))} | {cell(row.get('graph'))} |"
                  for row in sp["batch_table"]]
        lines += ["", "| mode | images/s | ms per step | warm-up s (compile, capture) |", "|---|---|---|---|"]
        lines += [f"| {name} | {r['images_per_s']:.0f} | {r['ms_per_step']:.1f} | {r['warmup_s']:.1f} |"
                  for name, r in sp["modes"].items()]
        lines += ["", "| train step | CUDA kernels | aten ops (all levels) | NCHW/NHWC transposes |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {c['cuda_kernels']} | {c['aten_ops']} | {c['layout_transposes']} |"
                  for name, c in sp["per_step"].items()]
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
        return self.out / "gpu.json" if self.cfg.dry_run else RESULTS

    def write_results(self) -> Optional[Path]:
        """The benchmark's JSON (the format of cpu.json) with the speed table, the precision check and the
        targets added; nothing when the benchmark did not run."""
        if self.bench_json is None:
            return None
        path = self.results_path()
        results = {**self.bench_json, "gpu_speed": self.speed, "score_precision": self.precision,
                   "gpu_targets": [{k: v for k, v in t.items() if k != "text"} for t in self.targets()],
                   "gpu_check_steps": [{"name": s.name, "ok": s.ok, "seconds": round(s.seconds, 1),
                                        "detail": s.detail} for s in self.steps]}
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
    checker.cuda_tests()
    checker.benchmark()
    checker.scoring(checker.trainers())
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
