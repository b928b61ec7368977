"""A 2-process torchrun (gloo, CPU) run equals the 1-process run on the same global batches."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from classifiers_oe.train import main
from classifiers_oe.weights import read_weights

ROOT = Path(__file__).resolve().parents[1]
# No BatchNorm (SyncBatchNorm needs GPUs), no dropout, no augmentation: the only difference between
# world sizes is then the order of float additions in the gradient all-reduce.
ARGS = ["-m", "classifiers_oe.train", "--dataset", "toy-shapes", "--image-size", "8", "--depth", "10",
        "--widen-factor", "1", "--norm", "none", "--dropout", "0", "--no-augment", "--mode", "oe_scratch",
        "--outliers", "gaussian", "--batch-size", "32", "--oe-batch-size", "64", "--epochs", "2",
        "--limit-steps", "3", "--num-workers", "0", "--no-progress", "--device", "cpu"]


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *ARGS, "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main(ARGS[2:] + ["--out", str(tmp_path / "single")]) == 0
    ddp, _ = read_weights(tmp_path / "ddp")
    single, _ = read_weights(tmp_path / "single")
    assert ddp.keys() == single.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-5, atol=1e-6, msg=k)
