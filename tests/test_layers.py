"""The layers of docs/architecture.md hold in the source text: a package names no package above it -- not in an
import, not in a string, not in a comment.

    oe_core  <-  classifiers_oe, density_oe  <-  analysis  <-  study, benchmarks

``oe_core`` names none of the others; each method package names only ``oe_core`` (never the other method package,
``analysis``, ``study`` or ``benchmarks``); ``analysis`` never names ``study``.  Python names that are not imports
(a variable called ``study``) are code, not a reference to a package, and are not read.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("classifiers_oe", "density_oe", "analysis", "study", "benchmarks")
# the two method package names are words of their own; "analysis", "study" and "benchmarks" are English words,
# so in text they count where they name a module or a path (analysis.evaluate, benchmarks/results, "study")
_REF = {p: re.compile(rf"\b{p}\b" if p.endswith("_oe") else rf"\b{p}(\.[A-Za-z_]|/)|^{p}$") for p in UPPER}
MINI_BENCHMARK = "oe_core/data/mini"   # moves to the mini benchmark's own subpackage on the study's branch


def references(path: Path, names: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``file:line: text`` for every import of, and every string or comment naming, one of ``names``."""
    text = path.read_text()
    rel = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(ast.parse(text)):
        mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for mod in mods:
            if mod.split(".")[0] in names:
                found.append(f"{rel}:{node.lineno}: import {mod}")
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            for name in names:
                m = _REF[name].search(tok.string.strip("'\""))
                if m:
                    line = tok.start[0] + tok.string[:tok.string.find(m.group(0))].count("\n")
                    found.append(f"{rel}:{line}: {name} in {m.string[max(0, m.start() - 30):m.end() + 30]!r}")
    return found


def offenders(package: str, names: tuple[str, ...]) -> list[str]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    return [ref for f in files for ref in references(f, names)]


def test_the_scan_finds_an_import_a_module_in_a_string_and_a_path_but_not_a_word(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""The study of likelihoods."""\nimport os\nfrom analysis import evaluate  # noqa\n'
                 'X = "python -m study.reproduce"\nY = ROOT / "benchmarks/results"\nZ = "density_oe"\n'
                 'study = object()\nstudy.run = 1  # the study runs\n')
    assert [r.split(":")[1] for r in references(f, UPPER, tmp_path)] == ["3", "4", "5", "6"]


def test_oe_core_names_no_upper_package():
    found = [r for r in offenders("oe_core", UPPER) if not r.startswith(MINI_BENCHMARK)]
    assert not found, "\n".join(found)


@pytest.mark.xfail(strict=True, reason="the mini benchmark (oe_core/data/mini*.py) names analysis.mini_study "
                                       "until it moves (wt-mini, #29); remove this mark on that merge")
def test_the_mini_benchmark_names_no_upper_package():
    found = [r for r in offenders("oe_core", UPPER) if r.startswith(MINI_BENCHMARK)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package, other", [("classifiers_oe", "density_oe"), ("density_oe", "classifiers_oe")])
def test_a_method_package_names_only_oe_core(package, other):
    found = offenders(package, (other, "analysis", "study", "benchmarks"))
    assert not found, "\n".join(found)


def test_analysis_never_names_study():
    found = offenders("analysis", ("study",))
    assert not found, "\n".join(found)
