"""scripts/gpu_check.sh: --dry-run runs every step on the CPU at toy sizes, reports them in one markdown summary and
writes its results JSON (the format of cpu.json plus the speed table, the precision check, graph = eager, the real
trainer step and the targets) under --out; without a GPU (and without --dry-run) it refuses in one line.  The
checks' decisions (capture required on a GPU, graph = eager within its tolerance, the memory guard, --quick's
order and budgets) are tested on their own, without subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import (DRY_IMAGE_SIZE, SCORE_IMAGES, SCORE_TOLERANCE_BPD, CheckConfig, Checker, Step,
                                  capture_verdict, epoch_seconds_per_step, main, score_tolerance_bpd)
from benchmarks.gpu_speed import memory_guard
from benchmarks.port import port_or_skip_reason
from oe_core.errors import cli_main

ROOT = Path(__file__).resolve().parents[1]
PORT, WHY = port_or_skip_reason()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the refusal cannot be shown")
def test_without_a_gpu_it_refuses_in_one_line(capsys, tmp_path):
    assert cli_main(main, ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA GPU" in err[0] and "--dry-run" in err[0]
    assert not any(tmp_path.iterdir())                       # nothing was started


def test_the_gpu_keeps_its_precision_limit_and_the_toy_limit_scales_with_one_over_sqrt_dims():
    assert SCORE_TOLERANCE_BPD == 0.01 and SCORE_IMAGES >= 2000        # the GPU target: 0.01 bits/dim, 2000 images
    assert score_tolerance_bpd(32) == pytest.approx(SCORE_TOLERANCE_BPD)
    assert score_tolerance_bpd(16) == pytest.approx(2 * SCORE_TOLERANCE_BPD)   # 4x fewer subpixels: 2x the limit
    assert score_tolerance_bpd(DRY_IMAGE_SIZE) == pytest.approx(SCORE_TOLERANCE_BPD * 32 / DRY_IMAGE_SIZE)


def test_the_dry_run_pins_one_thread_whatever_the_caller_has(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")      # two threads change the toy model (oneDNN's reduction order)
    assert Checker(CheckConfig(dry_run=True), tmp_path).env["OMP_NUM_THREADS"] == "1"
    assert Checker(CheckConfig(dry_run=False), tmp_path).env["OMP_NUM_THREADS"] == "2"   # the GPU run: as given


@pytest.mark.slow
@pytest.mark.skipif(PORT is None, reason=f"pclucas14 port not available: {WHY}")
def test_dry_run_runs_every_step_on_the_cpu_and_summarises_them(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "OE_PYTHON": sys.executable, "OE_CACHE": str(tmp_path / "cache")}
    env.pop("OMP_NUM_THREADS", None)      # as a user runs it: the dry run pins its own thread count
    r = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    md = r.stdout
    assert md.startswith("## GPU check:") and "dry run on the CPU" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and " | ok | " in line]
    names = " ".join(rows)
    for step in ("CUDA tests", "benchmark, amp bf16", "classifier trainer", "density trainer",
                 "graph = eager (density trainer, dropout on), and compile = eager", "bpd scoring, bf16 vs float32",
                 "GPU speed: batch table", "real trainer step vs the bare step"):
        assert step in names, step
    assert "| budget s | CUDA graph capture |" in md and md.count("not expected (") >= 6   # capture in every row
    assert "graph vs eager: max |diff| 0.00000" in md and "compile vs eager: max |diff|" in md
    assert "| ratio trainer / bare |" in md
    assert "[gpu_check] graph = eager: budget" in r.stderr and "[gpu_check] GPU speed: budget" in r.stderr
    assert "FAILED" not in md
    if not torch.cuda.is_available():
        assert "skipped because: no CUDA GPU" in md
    assert md.count("SIGTERM after step") == 2 and "exit 75" in md and "resumed at step" in md
    assert md.count("| pclucas14 port") >= 2                 # benchmark rows against the port
    assert (out / "pcnn" / "metrics.json").is_file() and (out / "scores-bf16.npy").is_file()
    assert "| train step batch |" in md and "| train/eager |" in md and "Targets (GPU only):" in md
    results = json.loads((out / "gpu.json").read_text())            # a dry run never writes benchmarks/results
    assert results["config"]["amp"] == "bf16" and {"train_paper", "score"} <= set(results["cases"])
    assert results["gpu_speed"]["batch_table"] and results["gpu_speed"]["per_step"]["eager"]["aten_ops"] > 0
    precision = results["score_precision"]
    assert precision["images"] == 64 and precision["ok"]
    assert precision["tolerance"] == pytest.approx(score_tolerance_bpd(DRY_IMAGE_SIZE))
    assert [t["target"].split(",")[0] for t in results["gpu_targets"]][:2] == ["paper-config bf16 train step",
                                                                               "paper-config bf16 scoring"]
    assert set(results["graph_eager"]["comparisons"]) == {"graph", "compile"}
    assert results["trainer_step"]["trainer_ms_per_step"] > 0 and results["trainer_step"]["ratio"] > 0
    assert all(s["capture"] != "-" for s in results["gpu_check_steps"] if s["name"] != "CUDA tests (`pytest -m cuda`)")
    assert not (out / "clf" / "config.json").read_text().count('"num_workers": 0')    # the default workers


def test_capture_verdicts():
    assert capture_verdict(True, ["captured", "captured"]) == (True, "captured (2 runs)")
    ok, text = capture_verdict(True, ["captured", "eager: RuntimeError: operation not permitted"])
    assert not ok and "NOT captured" in text and "operation not permitted" in text
    assert not capture_verdict(True, [None])[0] and not capture_verdict(True, [])[0]   # nothing said: not captured
    assert not capture_verdict(True, ["warming up"])[0]
    assert capture_verdict(False, [None]) == (True, "not expected (not attempted)")


def test_the_memory_guard_skips_a_batch_predicted_not_to_fit():
    gib = 2**30
    h100 = 80 * gib
    assert memory_guard(32, {}, h100) is None                          # nothing measured yet: run it
    assert memory_guard(256, {128: 30 * gib}, h100) is None            # 60 GiB <= 72 GiB
    why = memory_guard(256, {64: 15 * gib, 128: 40 * gib}, h100)       # 80 GiB from batch 128, the largest smaller
    assert why.startswith("skipped: needs about 80 GiB (batch 128") and "80 GiB" in why
    assert memory_guard(256, {128: 40 * gib}, 141 * gib) is None       # fits an H200
    assert memory_guard(256, {128: 40 * gib}, 0) is None               # no memory figure (CPU): run it


def test_the_trainer_step_comes_from_the_difference_of_two_run_lengths():
    assert epoch_seconds_per_step({"time_s": 5.0}, {"time_s": 11.0}, (30, 90)) == pytest.approx(0.1)


def _checker(tmp_path, **kw) -> Checker:
    cfg = CheckConfig(out=str(tmp_path), device="cuda", **kw)
    checker = Checker(cfg, tmp_path)
    checker.begin = lambda name, budget=0.0: __import__("time").time()
    return checker


def _fake_runs(checker, monkeypatch, rows: dict):
    """``Checker.run`` writing the density runs' metrics rows instead of training (``rows``: run name -> row)."""
    def run(log, cmd, env=None):
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps([rows[out.name.removeprefix("pcnn-")]]))
        log.write_text("$ " + " ".join(cmd))
        return 0
    monkeypatch.setattr(checker, "run", run)


ROW = {"epoch": 1, "time_s": 3.0, "train_loss": 5.0, "train_bpd": 5.0, "test_bpd": 4.8}


@pytest.mark.parametrize("case", ["agree", "graph_differs", "not_captured", "compile_differs"])
def test_graph_equals_eager_fails_on_a_difference_or_a_missing_capture(tmp_path, monkeypatch, case):
    checker = _checker(tmp_path)
    graph = {**ROW, "cuda_graph": "captured", "test_bpd": 4.8 + 0.009}
    compiled = dict(ROW, train_loss=5.0 + 0.019)
    if case == "graph_differs":
        graph["test_bpd"] = 4.8 + 0.011
    if case == "not_captured":
        graph["cuda_graph"] = "eager: RuntimeError: operation not permitted when stream is capturing"
    if case == "compile_differs":
        compiled["train_loss"] = 5.0 + 0.021
    _fake_runs(checker, monkeypatch, {"graph": graph, "eager": ROW, "compile": compiled})
    checker.graph_equals_eager()
    (step,) = checker.steps
    assert step.ok == (case == "agree"), step.detail
    assert ("NOT captured" in step.capture) == (case == "not_captured")
    assert checker.graph_eager["comparisons"]["graph"]["tolerance"] == gpu_check.GRAPH_EAGER_TOLERANCE_BPD == 0.01


def test_a_scorer_that_did_not_capture_fails_the_scoring_row_on_a_gpu(tmp_path):
    checker = _checker(tmp_path)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    logs[0].write_text("mini-id: 64 images, mean 7.9 bits/dim -> x.npy (CUDA graph: captured)\n")
    logs[1].write_text("mini-id: 64 images, mean 7.9 bits/dim -> y.npy (CUDA graph: eager: RuntimeError: x)\n")
    checker.steps.append(Step("bpd scoring, bf16 vs float32", True, 1.0, "64 images", logs))
    checker.annotate_scoring()
    assert not checker.steps[0].ok and "did not capture" in checker.steps[0].detail
    assert "NOT captured" in checker.steps[0].capture


def test_quick_runs_the_top_risks_in_order_within_six_minutes(tmp_path, monkeypatch, capsys):
    """--quick: capture with the default workers, graph = eager (no compile), speed at 32/64 with the real trainer
    step, the CUDA tests; each step's budget printed; nothing else runs."""
    calls = []
    for name in ("density_capture", "graph_equals_eager", "gpu_speed", "cuda_tests", "benchmark", "trainers",
                 "scoring"):
        monkeypatch.setattr(Checker, name, lambda self, *a, _n=name, **k: calls.append((_n, a, k)))
    import torch as _torch
    monkeypatch.setattr(_torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(_torch.cuda, "get_device_name", lambda *a: "fake GPU")
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    b = gpu_check.QUICK_BUDGETS
    assert [c[0] for c in calls] == ["density_capture", "graph_equals_eager", "gpu_speed", "cuda_tests"]
    assert calls[0][1] == (b["capture"],) and calls[1][1] == (b["graph_eager"],) and calls[1][2] == {"compiled": False}
    assert calls[2][1] == (b["speed"],) and calls[3][1] == (b["cuda_tests"],)
    assert sum(b.values()) <= 360 and gpu_check.QUICK_SPEED_BATCHES == ("32", "64")
    assert "--quick (budget 360 s)" in capsys.readouterr().out
    assert (tmp_path / "gpu-quick.json").is_file()
