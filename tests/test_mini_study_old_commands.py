"""The mini-study's tools moved to ``study.mini``; the users' old commands ``python -m analysis.mini_study`` and
``python -m analysis.mini_select`` still run them, and importing those old modules imports nothing from ``study``
(``analysis`` sits below it).  One fresh interpreter checks both (``runpy`` runs a module as ``python -m`` does)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import contextlib, io, json, runpy, sys
import analysis.mini_study, analysis.mini_select
imported = sorted(m for m in sys.modules if m == "study" or m.startswith("study."))
usage = {}
for old in ("analysis.mini_study", "analysis.mini_select"):
    sys.argv, out = [old, "--help"], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module(old, run_name="__main__", alter_sys=True)
        except SystemExit as e:
            usage[old] = [e.code, out.getvalue()]
print(json.dumps([imported, usage]))
"""


def test_the_old_commands_run_the_moved_tools_and_import_nothing_from_study_otherwise(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    imported, usage = json.loads(r.stdout)
    assert imported == []
    for old, new, option in (("analysis.mini_study", "study.mini", "--preset"),
                             ("analysis.mini_select", "study.mini.select", "--candidates")):
        code, text = usage[old]
        assert code == 0 and text.startswith(f"usage: python -m {new} ") and option in text, (old, text[:300])
