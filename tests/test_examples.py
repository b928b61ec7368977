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
def test_oe_minimal_example_improves_msp_auroc():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "oe_minimal.py"), "--threads=1"], env=env,
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"mean MSP AUROC ([\d.]+)% -> ([\d.]+)%", proc.stdout)
    assert m, proc.stdout[-2000:]
    before, after = float(m.group(1)), float(m.group(2))
    # measured: 52.7% -> 75.1%; the same fine-tuning without the OE term (--lam=0) gives 52.7% -> 61.7%
    assert after > before + 15.0, proc.stdout


def test_oe_minimal_example_rejects_unknown_options():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "oe_minimal.py"), "--nope=1"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "unknown or malformed option '--nope=1'" in proc.stderr
