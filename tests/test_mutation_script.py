"""scripts/mutation.sh's arguments and its module -> tests map (the mutation runs themselves are not in CI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mutation.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OE_PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_an_unknown_module_is_one_line_and_exit_2():
    r = run("oe_core/metrics.py", "oe_core/no_such_module.py")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no mutation target oe_core/no_such_module.py in ")
    assert "oe_core/metrics.py" in lines[0]   # it names the known ones


def test_no_module_is_usage_and_exit_2():
    r = run()
    assert r.returncode == 2 and r.stderr.startswith("usage: scripts/mutation.sh MODULE...")


def test_every_target_names_an_existing_module_and_existing_tests():
    r = run("--list")
    assert r.returncode == 0
    rows = [line.split() for line in r.stdout.splitlines()]
    assert len(rows) >= 10
    for spec, *tests in rows:
        assert (ROOT / spec.split("::")[0]).is_file(), spec
        assert tests and all((ROOT / t.split("::")[0]).is_file() for t in tests), (spec, tests)
