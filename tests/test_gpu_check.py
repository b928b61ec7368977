"""scripts/gpu_check.sh: --dry-run runs every step on the CPU at toy sizes, reports them in one markdown summary and
writes its results JSON (the format of cpu.json plus the speed table, the precision check and the targets) under
--out; without a GPU (and without --dry-run) it refuses in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import (DRY_IMAGE_SIZE, SCORE_IMAGES, SCORE_TOLERANCE_BPD, CheckConfig, Checker, main,
                                  score_tolerance_bpd)
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
                 "bpd scoring, bf16 vs float32", "GPU speed: batch table"):
        assert step in names, step
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
