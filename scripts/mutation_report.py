"""Helpers of scripts/mutation.sh: pick a module's mutants, and report mutmut's results for them.

    mutation_report.py config WORK MODULE TEST...                      mutmut's config in WORK/pyproject.toml
    mutation_report.py select WORK MODULE FUNCTION_GLOB [LINE_REGEX]   mutant names to run, one a line
    mutation_report.py report WORK MODULE SPEC SURVIVORS_FILE NAME...   counts, survivors and their diffs

The diffs are read from the mutated copy of MODULE that mutmut writes to WORK/mutants (every mutant is a copy of
its function there), so no mutmut process runs per survivor.
"""
from __future__ import annotations

import ast
import collections
import difflib
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

SEP = "ǁ"  # mutmut's separator in the names of methods' mutants: module.xǁClassǁmethod__mutmut_N


def mangled_glob(module: str, function: str) -> str:
    """``Class.method`` or ``function`` (shell patterns allowed) -> a glob over mutmut's mutant names."""
    dotted = module.removesuffix(".py").replace("/", ".")
    if "." in function:
        cls, meth = function.split(".", 1)
        return f"{dotted}.x{SEP}{cls}{SEP}{meth}__mutmut_*"
    return f"{dotted}.x_{function}__mutmut_*"


def mutant_functions(work: Path, module: str) -> dict[str, str]:
    """Source of every generated function (the originals ``..._mutmut_orig`` and the mutants) in the copy."""
    src = (work / "mutants" / module).read_text(encoding="utf-8")
    lines = src.splitlines()   # (ast.get_source_segment splits the whole file per call: minutes on a big module)
    return {node.name: "\n".join(lines[node.lineno - 1:node.end_lineno]) for node in ast.walk(ast.parse(src))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name}


def changed_lines(functions: dict[str, str], name: str) -> list[str]:
    """The lines a mutant changes, as ``-old`` / ``+new``."""
    short = name.rsplit(".", 1)[-1]
    orig_name = short.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    orig = functions[orig_name].replace(orig_name, short, 1).splitlines()
    new = functions[short].splitlines()
    return [line for line in difflib.unified_diff(orig, new, lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def select(work: Path, module: str, function: str, regex: str = "") -> list[str]:
    dotted = module.removesuffix(".py").replace("/", ".")
    functions = mutant_functions(work, module)
    pattern = mangled_glob(module, function)
    names = sorted(f"{dotted}.{n}" for n in functions
                   if not n.endswith("__mutmut_orig") and fnmatch.fnmatch(f"{dotted}.{n}", pattern))
    if regex:
        names = [n for n in names if any(re.search(regex, line[1:]) for line in changed_lines(functions, n))]
    return names


def mutmut_status(work: Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                         capture_output=True, text=True, check=True).stdout
    status = {}
    for line in out.splitlines():
        name, sep, st = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            status[name] = st
    return status


def report(work: Path, module: str, spec: str, survivors_file: Path, names: list[str]) -> None:
    status = mutmut_status(work)
    if names:
        status = {n: s for n, s in status.items() if n in names}
    else:
        dotted = module.removesuffix(".py").replace("/", ".")
        status = {n: s for n, s in status.items() if n.startswith(dotted + ".")}
    counts = collections.Counter(status.values())
    survived = sorted(n for n, s in status.items() if s == "survived")
    killed, timeout = counts["killed"], counts["timeout"]
    other = {k: v for k, v in counts.items() if k not in ("killed", "survived", "timeout")}
    tested = killed + timeout + len(survived)
    score = f"{100 * (killed + timeout) / tested:.1f}%" if tested else "n/a"
    print(f"{spec}: {len(status)} mutants: killed {killed}, survived {len(survived)}, timed out {timeout}"
          + "".join(f", {k} {v}" for k, v in sorted(other.items()))
          + f"; killed or timed out: {score} of the tested")
    functions = mutant_functions(work, module)
    with open(survivors_file, "w", encoding="utf-8") as f:
        for n in survived:
            lines = changed_lines(functions, n)
            print(f"  survived: {n}")
            f.write(f"## {n}\n" + "\n".join(lines) + "\n\n")
    if survived:
        print(f"  their diffs: {survivors_file}")


# the packages mutmut copies (the tests import them all); only MODULE is mutated
PACKAGES = ["oe_core", "classifiers_oe", "density_oe", "analysis", "benchmarks"]


def config(work: Path, module: str, tests: list[str]) -> None:
    """Append mutmut's settings to the copy's pyproject.toml.  forkserver: each mutant runs in a process forked
    from one that has imported pytest and torch but run no test (torch is not fork-safe after use)."""
    q = lambda xs: "[" + ", ".join(json.dumps(x) for x in xs) + "]"  # noqa: E731
    with open(work / "pyproject.toml", "a", encoding="utf-8") as f:
        f.write(f"""
[tool.mutmut]
source_paths = {q(PACKAGES)}
only_mutate = {q([module])}
pytest_add_cli_args = {q(["-p", "no:cacheprovider"])}
pytest_add_cli_args_test_selection = {q(tests)}
use_git_change_detection = false
track_dependencies = false
use_setproctitle = false
process_isolation = "forkserver"
""")


def main(argv: list[str]) -> None:
    cmd, work, module, *rest = argv
    if cmd == "config":
        config(Path(work), module, rest)
    elif cmd == "select":
        print("\n".join(select(Path(work), module, *rest)))
    elif cmd == "report":
        spec, survivors_file, *names = rest
        report(Path(work), module, spec, Path(survivors_file), names)
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
