"""examples/oe_minimal.py runs as shipped and shows what OE does: MSP separates the OOD sets better after it."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="mini benchmark v2 (independent test crops): the example's own recipe "
                   "(WRN-10-2 without dropout, 2 OE epochs at lr 0.01 on batches of 64 + 128) measured 96.9% -> 90.1% "
                   "mean MSP AUROC on 2026-12-04; its settings were not re-chosen on validation data yet (issue 20)")
def test_oe_minimal_example_improves_msp_auroc():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "oe_minimal.py"), "--threads=1"], env=env,
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"mean MSP AUROC ([\d.]+)% -> ([\d.]+)%", proc.stdout)
    assert m, proc.stdout[-2000:]
    before, after = float(m.group(1)), float(m.group(2))
    # measured on mini benchmark v1: 52.7% -> 75.1%; the same fine-tuning without the OE term (--lam=0) gave
    # 52.7% -> 61.7%.  On v2: 96.9% -> 90.1% (see the xfail reason)
    assert after > before + 15.0, proc.stdout


def test_oe_minimal_example_rejects_unknown_options():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "oe_minimal.py"), "--nope=1"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "unknown or malformed option '--nope=1'" in proc.stderr
