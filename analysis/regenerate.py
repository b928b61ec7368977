"""``python -m analysis.regenerate DIR``: rebuild every table and figure of an evaluation folder from its score
cache, with the settings each tool recorded (what ``scripts/figures.sh DIR`` runs).

1. ``DIR/results.{json,csv,md,tex}`` via ``analysis.evaluate --from-results`` (``results.json`` comes out
   byte-identical while the cache is unchanged; a damaged cache entry is recomputed from its checkpoint);
2. every sub-folder of ``DIR`` holding a ``config.json`` written by ``analysis.figures``, ``analysis.compare``
   or ``analysis.svhn_likelihood`` is re-rendered with those settings (column titles, paper numbers, bar
   series, training runs, the likelihood study's models and OOD set), reading ``DIR/results.json``;
3. ``figures/`` and ``compare/`` with default settings when no record of them exists.

The record: each rendering tool writes the settings it ran with beside its outputs (``<out>/config.json``,
:func:`record_config`), which step 2 reads back (:func:`read_record`).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import config_from_dict, config_to_dict, help_field, parse_config, require, validate
from oe_core.errors import OEError, cli_main
from oe_core.outputs import check_writable_folder

from .evaluate import reevaluate
from .results import write_evaluation

CONFIG_NAME = "config.json"


def absolute_pairs(pairs: list[str]) -> list[str]:
    """``LABEL=PATH`` items with ``PATH`` made absolute (so the record still works from another folder)."""
    out = []
    for item in pairs:
        label, eq, path = item.partition("=")
        out.append(f"{label}={Path(path).expanduser().resolve()}" if eq else item)
    return out


def record_config(cfg: Any, out: Path, tool: str, **overrides: Any) -> None:
    """Write ``cfg`` (with ``overrides``) and the tool's module name to ``out/config.json``."""
    doc = {**config_to_dict(cfg), **overrides, "tool": tool}
    atomic_write_text(Path(out) / CONFIG_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_record(folder: Path) -> Optional[dict]:
    """The record in ``folder`` (``None`` when there is none or it is not one)."""
    path = Path(folder) / CONFIG_NAME
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("tool"), str) else None


def recorded_tools() -> dict[str, tuple[type, Callable]]:
    """Tool (as recorded) -> its config class and the function that renders it (imported here: the tools import
    :func:`record_config` from this module)."""
    from .compare import CompareConfig, run_compare
    from .figures.__main__ import FiguresConfig, render_figures
    from .svhn_likelihood import LikelihoodConfig, run_study
    return {"analysis.figures": (FiguresConfig, render_figures), "analysis.compare": (CompareConfig, run_compare),
            "analysis.svhn_likelihood": (LikelihoodConfig, run_study)}


@dataclass
class RegenerateConfig:
    """Rebuild every table and figure of an evaluation folder from its score cache and recorded settings."""

    dir: str = help_field("", "the evaluation folder (holds results.json)")

    def validate(self) -> None:
        require(bool(self.dir), "give the evaluation folder: python -m analysis.regenerate DIR")


def regenerate(folder: str | Path) -> list[str]:
    """Rebuild the outputs of ``folder``; returns what was rebuilt, one line each."""
    tools = recorded_tools()
    folder = Path(folder)
    results = folder / "results.json"
    check_writable_folder(folder, "DIR")
    if not results.is_file():
        raise OEError(f"{str(folder)!r} holds no results.json (an output folder of python -m analysis.evaluate)")
    write_evaluation(reevaluate(results, folder), folder)
    done = [f"{folder}/results.{{json,csv,md,tex}}"]
    recorded = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        record = read_record(sub)
        if record is not None and record["tool"] in tools:
            recorded[sub] = record
    for tool, default in (("analysis.figures", "figures"), ("analysis.compare", "compare")):
        if not any(r["tool"] == tool for r in recorded.values()):
            recorded[folder / default] = {"tool": tool}
    for sub, record in recorded.items():
        cls, run = tools[record["tool"]]
        cfg = config_from_dict(cls, record)
        if isinstance(cfg.results, list):  # compare: several results files are kept as recorded
            cfg.results = [str(results)] if len(cfg.results) <= 1 else cfg.results
        else:
            cfg.results = str(results)
        cfg.out = str(sub)
        validate(cfg)
        run(cfg)
        done.append(f"{sub}/ ({record['tool']})")
    return done


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        args = ["--dir", *args]
    cfg = parse_config(RegenerateConfig, args, prog="python -m analysis.regenerate", description=__doc__)
    for line in regenerate(cfg.dir):
        print(f"regenerated {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
