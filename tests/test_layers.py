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
# users' commands do not change (#29): the old names of the tools that moved up to study stay in analysis, each
# naming only the module it became, once, as the argument of runpy.run_module (test_an_old_command_name_...)
OLD_COMMANDS = {"analysis/mini_study.py": "study.mini", "analysis/mini_select.py": "study.mini.select"}


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
    found = offenders("oe_core", UPPER)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package, other", [("classifiers_oe", "density_oe"), ("density_oe", "classifiers_oe")])
def test_a_method_package_names_only_oe_core(package, other):
    found = offenders(package, (other, "analysis", "study", "benchmarks"))
    assert not found, "\n".join(found)


def test_analysis_never_names_study():
    found = [r for r in offenders("analysis", ("study",)) if r.split(":")[0] not in OLD_COMMANDS]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("rel, target", sorted(OLD_COMMANDS.items()))
def test_an_old_command_name_only_runs_the_tool_it_became(rel, target):
    """Its one reference to study is the module ``runpy.run_module`` runs when the file runs as ``__main__``: no
    import, nothing done on import."""
    path = ROOT / rel
    assert [r.split(": ", 1)[1] for r in references(path, ("study",))] == [f"study in {target!r}"]
    tree = ast.parse(path.read_text())
    doc, imp, main = tree.body
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
    assert isinstance(imp, ast.Import) and [a.name for a in imp.names] == ["runpy"]
    assert ast.unparse(main) == (f"if __name__ == '__main__':\n    runpy.run_module({target!r}, run_name='__main__', "
                                 f"alter_sys=True)")
