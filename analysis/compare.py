"""``python -m analysis.compare``: the paper's side-by-side table from ``analysis.evaluate`` results.

Rows: the OOD sets and their mean; columns: any (model, detector) pairs -- typically MSP baseline, MSP+OE,
likelihood baseline, likelihood+OE -- one table per metric.  Where a column's setup matches a published one,
``--paper TITLE=KEY`` prints the paper's number beside ours as ``ours (paper)`` (keys: ``--list-paper``).
Writes ``compare.{md,tex,csv,json}`` to ``--out``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from oe_core.cli_config import help_field, parse_config
from oe_core.errors import ConfigError, cli_main
from oe_core.atomic import atomic_write_text
from oe_core.outputs import check_writable_folder

from .paper_numbers import PAPER_COLUMNS, PaperColumn, paper_column
from .regenerate import record_config
from .results import Evaluation, SetResult
from .tables import MISSING, Table, header, write_tables


@dataclass
class CompareConfig:
    """Side-by-side comparison table of detectors/models over OOD sets, with the paper's numbers."""

    results: list[str] = help_field(["runs/evaluate/results.json"], "results.json files of analysis.evaluate")
    columns: list[str] = help_field([], "columns as TITLE=LABEL:DETECTOR, e.g. 'MSP+OE=c10_oe:msp' (default: "
                                        "every model/detector pair in the results)")
    paper: list[str] = help_field([], "paper numbers beside a column: TITLE=KEY (see --list-paper), e.g. "
                                      "'MSP+OE=c10-wrn-msp-oe-tune'")
    metrics: list[str] = help_field(["fpr95", "auroc", "aupr_out"], "metrics, one table each (fpr95, auroc, "
                                                                    "aupr_out = the paper's AUPR, aupr_in, "
                                                                    "detection_error)")
    out: str = help_field("runs/compare", "output folder for compare.{md,tex,csv,json}")
    list_paper: bool = help_field(False, "list the paper columns available to --paper and exit")


@dataclass
class Column:
    title: str
    rows: list[SetResult]
    paper: Optional[PaperColumn] = None

    def result(self, ood: str) -> Optional[SetResult]:
        return next((r for r in self.rows if r.ood["name"] == ood and r.ok), None)


def _columns(evals: list[Evaluation], specs: list[str], paper: list[str]) -> list[Column]:
    groups: dict[tuple[str, str], list[SetResult]] = {}
    for ev in evals:
        for key, rows in ev.groups().items():
            if key in groups:
                raise ConfigError(f"model {key[0]!r} with detector {key[1]!r} is in more than one results file")
            groups[key] = rows
    if specs:
        cols = []
        for spec in specs:
            title, eq, ref = spec.rpartition("=")
            label, colon, det = ref.partition(":")
            if not eq or not colon or not title:
                raise ConfigError(f"--columns {spec!r}: expected TITLE=LABEL:DETECTOR")
            if (label, det) not in groups:
                raise ConfigError(f"--columns {spec!r}: no results for {label}:{det}; have "
                                  + ", ".join(f"{m}:{d}" for m, d in groups))
            cols.append(Column(title, groups[(label, det)]))
    else:
        cols = [Column(f"{m} / {d}", rows) for (m, d), rows in groups.items()]
    titles = {c.title: c for c in cols}
    id_name = evals[0].settings["id_dataset"]["name"]
    for spec in paper:
        title, eq, key = spec.rpartition("=")
        if not eq or title not in titles:
            raise ConfigError(f"--paper {spec!r}: expected TITLE=KEY with TITLE one of {list(titles)}")
        col = paper_column(key)
        if col.id_dataset != id_name:
            raise ConfigError(f"--paper {spec!r}: the paper's {key} has in-distribution {col.id_dataset}, "
                              f"these results {id_name}")
        titles[title].paper = col
    return cols


def _sets(cols: list[Column]) -> list[tuple[str, str]]:
    """(dataset name, display name) of every OOD set, in first-seen order."""
    seen: dict[str, str] = {}
    for c in cols:
        for r in c.rows:
            seen.setdefault(r.ood["name"], r.display)
    return list(seen.items())


def _cell(ours: Optional[float], paper: Optional[float]) -> str:
    text = MISSING if ours is None else f"{100 * ours:.2f}"
    return text if paper is None else f"{text} ({100 * paper:.2f})"


def _paper_mean(col: Column, metric: str, evaluated: list[str]) -> tuple[Optional[float], bool]:
    """The paper's mean for the sets evaluated here: its published mean when they are its sets, else the
    mean of its values over the evaluated sets (flag True)."""
    if col.paper is None:
        return None, False
    if sorted(evaluated) == sorted(col.paper.values):
        return col.paper.mean_value(metric), False
    vals = [v for v in (col.paper.value(s, metric) for s in evaluated) if v is not None]
    return (float(np.mean(vals)) if vals else None), True


def compare_tables(cols: list[Column], metrics: list[str]) -> tuple[list[Table], list[dict]]:
    """One table per metric, plus the long-format records (values as fractions)."""
    sets = _sets(cols)
    tables, records = [], []
    for metric in metrics:
        body, notes = [], []
        for name, display in sets:
            row = [display]
            for c in cols:
                r = c.result(name)
                ours = r.mean(metric) if r else None
                paper = c.paper.value(name, metric) if c.paper else None
                row.append(_cell(ours, paper))
                records.append({"metric": metric, "ood_set": display, "dataset": name, "column": c.title,
                                "mean": ours, "std": r.std(metric) if r else None, "paper": paper})
            body.append(row)
        mean_row, dagger = ["Mean"], False
        for c in cols:
            evaluated = [s for s, _ in sets if c.result(s)]
            ours = float(np.mean([c.result(s).mean(metric) for s in evaluated])) if evaluated else None
            paper, partial = _paper_mean(c, metric, evaluated)
            dagger |= partial and paper is not None
            mean_row.append(_cell(ours, paper) + ("†" if partial and paper is not None else ""))
            records.append({"metric": metric, "ood_set": "Mean", "dataset": "", "column": c.title, "mean": ours,
                            "std": None, "paper": paper, "sets": len(evaluated)})
            missing = [d for s, d in sets if not c.result(s)]
            if missing:
                notes.append(f"{c.title}: not evaluated on {', '.join(missing)} (the mean is over the others).")
        body.append(mean_row)
        if any(c.paper for c in cols):
            notes.append("ours (paper)" + ("; † the paper's mean over the sets evaluated here, not its published "
                                           "mean." if dagger else "."))
        notes.append("Values in %; " + ("lower is better." if metric.startswith("fpr") or metric == "detection_error"
                                        else "higher is better."))
        tables.append(Table(f"{header(metric)} (%)", ["OOD set"] + [c.title for c in cols], body, notes))
    return tables, records


def _csv(records: list[dict]) -> str:
    """Long format, values in percent."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["metric", "ood_set", "dataset", "column", "mean", "std", "paper"],
                       extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for rec in records:
        w.writerow({k: ("" if v is None else f"{100 * v:.6f}" if isinstance(v, float) else v) for k, v in rec.items()})
    return buf.getvalue()


def _check(evals: list[Evaluation], metrics: list[str]) -> None:
    ids = {ev.settings["id_dataset"]["text"] for ev in evals}
    if len(ids) > 1:
        raise ConfigError(f"the results have different in-distribution sets ({', '.join(sorted(ids))}); "
                          "compare results of one ID set")
    known = {m for ev in evals for r in ev.rows if r.ok for m in r.protocol["mean"]}
    for m in metrics:
        if known and m not in known:
            raise ConfigError(f"--metrics: {m!r} is not in the results; metrics: {', '.join(sorted(known))}")


def run_compare(cfg: CompareConfig) -> tuple[list[Table], dict[str, Path]]:
    """Write the comparison tables of ``cfg`` (and its settings, for ``analysis.regenerate``)."""
    out = check_writable_folder(cfg.out)
    evals = [Evaluation.load(p) for p in cfg.results]
    _check(evals, cfg.metrics)
    cols = _columns(evals, cfg.columns, cfg.paper)
    tables, records = compare_tables(cols, cfg.metrics)
    paths = write_tables(tables, out, "compare", _csv(records))
    paths["json"] = out / "compare.json"
    atomic_write_text(paths["json"], json.dumps({"columns": [c.title for c in cols], "records": records},
                                                indent=1) + "\n")
    record_config(cfg, out, "analysis.compare", results=[str(Path(p).resolve()) for p in cfg.results])
    return tables, paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(CompareConfig, argv, prog="python -m analysis.compare", description=__doc__)
    if cfg.list_paper:
        for key, c in PAPER_COLUMNS.items():
            print(f"{key:28s} {c.title}; ID {c.id_dataset}, detector {c.detector}; {c.source}")
        return 0
    tables, paths = run_compare(cfg)
    print("\n".join(t.markdown() for t in tables))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
