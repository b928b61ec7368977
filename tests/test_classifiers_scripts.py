"""The CIFAR WRN run scripts assemble a valid trainer command line (smoke run on the toy set)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("cifar*_wrn_*.sh"))
# Overrides that turn a CIFAR run into a seconds-long toy run (later options win in argparse).
TOY = ["--dataset", "toy-shapes", "--image-size", "8", "--depth", "10", "--widen-factor", "1", "--epochs", "1",
       "--limit-steps", "2", "--batch-size", "16", "--oe-batch-size", "16", "--outliers", "gaussian",
       "--device", "cpu", "--num-workers", "0", "--no-progress"]


def test_every_script_is_valid_bash():
    assert len(SCRIPTS) == 7
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), script
        subprocess.run(["bash", "-n", str(script)], check=True)


def run(script: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OE_PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "DATA_ROOT": str(tmp_path), "OUT": str(tmp_path / "runs")}
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_baseline_then_oe_tune_scripts_chain(tmp_path):
    proc = run("cifar10_wrn_baseline.sh", tmp_path, *TOY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run("cifar10_wrn_oe_tune.sh", tmp_path, *TOY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((tmp_path / "runs" / "cifar10_wrn_oe_tune" / "config.json").read_text())
    assert cfg["mode"] == "oe_tune" and cfg["init"] == str(tmp_path / "runs" / "cifar10_wrn_baseline")
    assert cfg["data_root"] == str(tmp_path)


def test_scripts_need_data_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATA_ROOT"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "cifar100_wrn_oe_scratch.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DATA_ROOT" in proc.stderr
