"""Measured numbers live in the dated docs (docs/results.md, docs/performance.md, docs/mini_benchmark.md), not in
docstrings and comments: this scan of every docstring and comment of the suite's packages and scripts fails on a
timing ("3.2 s per step", "4 minutes on a 2-core CPU"), a load average with its value, a date or a speed-up factor,
and names the file and line.  Help texts, error messages and other strings are not scanned (their numbers are
defaults and limits)."""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("oe_core", "classifiers_oe", "density_oe", "analysis", "benchmarks", "scripts", "study")

UNIT = r"(?:ms|s|sec|seconds?|min|minutes?|h|hours?)"
PATTERNS = {
    "a timing": re.compile(rf"\b\d+(?:\.\d+)?\s?{UNIT}\s+(?:on|per)\b", re.I),
    "a load average": re.compile(r"\bload averages?\s*(?:of|was|:|=)?\s*\d", re.I),
    "a date": re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b"),
    "a speed-up": re.compile(r"\b\d+(?:\.\d+)?\s?x\s+(?:faster|slower)\b", re.I),
}
BOUND = re.compile(r"(?:<=?|>=?|at most|up to|within)\s*$", re.I)   # "<= 8 min on one GPU": a limit, not a measurement


def _python_texts(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every docstring and comment of a Python source."""
    texts = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                texts.append((body[0].lineno, body[0].value.value))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            texts.append((tok.start[0], tok.string))
    return texts


def _shell_texts(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every comment line (and trailing `` # `` comment) of a shell script or TOML file."""
    texts = []
    for i, line in enumerate(source.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("#"):
            texts.append((i, stripped))
        elif " # " in line:
            texts.append((i, line.split(" # ", 1)[1]))
    return texts


def findings(name: str, source: str) -> list[str]:
    """``name:line: kind: text`` for every measured number in the docstrings and comments of ``source``."""
    texts = _python_texts(source) if name.endswith(".py") else _shell_texts(source)
    out = []
    for line, text in texts:
        flat = " ".join(text.split())       # a docstring's phrase may wrap
        for kind, pattern in PATTERNS.items():
            for m in pattern.finditer(flat):
                if BOUND.search(flat[max(0, m.start() - 12):m.start()]):
                    continue
                out.append(f"{name}:{line}: {kind}: ...{flat[max(0, m.start() - 30):m.end() + 20]}...")
    return out


def _files() -> list[Path]:
    files = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.suffix in (".py", ".sh", ".toml"):
                files.append(path)
    return files


def test_no_measured_numbers_in_docstrings_or_comments():
    files = _files()
    assert len(files) > 100          # the scan sees the packages
    found = [f for path in files for f in findings(path.relative_to(ROOT).as_posix(), path.read_text())]
    assert not found, "move these to the dated docs (docs/performance.md, docs/results.md):\n" + "\n".join(found)


PLANTED = '''"""Scores a batch.

One epoch takes 41.5 s on the H100 (2026-12-07).
"""
LIMIT = 120  # wait 120 s before the time limit; default 0.5 s


def f():
    """Helper."""
    x = "3 s per step"   # the 1-minute load average was 1.93 here
    return 2  # 1.6x faster than the port
'''


def test_the_scan_catches_planted_numbers_and_passes_defaults():
    found = findings("planted.py", PLANTED)
    kinds = [f.split(": ")[1] for f in found]
    assert kinds == ["a timing", "a date", "a load average", "a speed-up"], found
    assert found[0].startswith("planted.py:1: a timing") and "41.5 s on" in found[0]
    assert found[2].startswith("planted.py:10: a load average")
    # a string (help text, message) is not a docstring or comment; defaults and limits are not timings
    assert findings("ok.py", 'X = "3 s per step"  # wait 120 s before the limit\n') == []
    assert findings("ok.sh", "# the checks in one call (<= 8 min on one GPU), at most 6 minutes per step\n") == []


@pytest.mark.parametrize("text", ["# about 4 minutes on a 2-core CPU", "echo hi  # 5 min per epoch"])
def test_the_scan_reads_shell_comments(text):
    assert len(findings("x.sh", text + "\n")) == 1
