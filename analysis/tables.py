"""Tables of evaluation results as CSV, JSON, Markdown and LaTeX (values in percent, mean ± std over trials).

One table per (model, detector): a row per OOD set and the unweighted mean over the evaluated sets (the
reference's "Mean Test Results"; it has no std).  A set that was skipped shows dashes and a note saying why.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from oe_core.atomic import atomic_write_text

from .results import Evaluation, SetResult

MISSING = "—"
PAPER_METRICS = ("auroc", "aupr_out")  # with the FPR metric first; see table_metrics()
HEADERS = {"auroc": "AUROC", "aupr_out": "AUPR", "aupr_in": "AUPR-In", "detection_error": "Detection error"}


@dataclass
class Table:
    """A titled grid of text cells with notes; renders to Markdown and LaTeX."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    bold_last_row: bool = True

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
               "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"]
        for i, row in enumerate(self.rows):
            cells = [f"**{c}**" if (self.bold_last_row and i == len(self.rows) - 1 and c != MISSING) else c
                     for c in row]
            out.append("| " + " | ".join(cells) + " |")
        out += [""] + [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        return "\n".join(out)

    def latex(self) -> str:
        spec = "l" + "r" * (len(self.columns) - 1)
        out = [r"\begin{table}[t]", r"\centering", r"\caption{" + latex_escape(self.title) + "}",
               r"\begin{tabular}{" + spec + "}", r"\toprule",
               " & ".join(latex_escape(c) for c in self.columns) + r" \\", r"\midrule"]
        for i, row in enumerate(self.rows):
            if self.bold_last_row and i == len(self.rows) - 1:
                out.append(r"\midrule")
            out.append(" & ".join(latex_escape(c) for c in row) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        out += [r"\par\smallskip\footnotesize " + latex_escape(n) for n in self.notes]
        out.append(r"\end{table}")
        return "\n".join(out) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
          MISSING: "--", "†": r"$^\dagger$", "→": r"$\rightarrow$", "≥": r"$\geq$"}


def latex_escape(text: str) -> str:
    return re.sub("|".join(re.escape(k) for k in _LATEX), lambda m: _LATEX[m.group(0)], str(text))


def pct(value: Optional[float], std: Optional[float] = None, digits: int = 2) -> str:
    """A fraction as a percentage, with ``± std`` when given; :data:`MISSING` for ``None``."""
    if value is None:
        return MISSING
    text = f"{100 * value:.{digits}f}"
    return text if std is None else f"{text} ± {100 * std:.{digits}f}"


def table_metrics(ev: Evaluation) -> list[str]:
    """The paper's three metrics: FPR at the TPR level, AUROC, AUPR (OOD positive)."""
    return [ev.fpr_metric, *PAPER_METRICS]


def header(metric: str) -> str:
    return HEADERS.get(metric, metric.upper())


def set_mean(rows: list[SetResult], metric: str) -> Optional[float]:
    """Unweighted mean of the per-set means over the evaluated sets (``None`` if none was)."""
    vals = [r.mean(metric) for r in rows if r.ok]
    return float(np.mean(vals)) if vals else None


def _group_title(ev: Evaluation, model: str, detector: str, rows: list[SetResult]) -> str:
    s = ev.settings
    first = next((r for r in rows if r.ok), None)
    n_in = f", n={first.protocol['n_in']}" if first else ""
    return (f"{model} / {detector} — ID {s['id_dataset']['text']}{n_in}; "
            f"{s['num_to_avg']} trials, OOD:ID = 1:{s['ratio']}, FPR rule {s['rule']}")


def evaluation_tables(ev: Evaluation) -> list[Table]:
    metrics = table_metrics(ev)
    tables = []
    for (model, detector), rows in ev.groups().items():
        body, notes = [], []
        for r in rows:
            if r.ok:
                body.append([r.display] + [pct(r.mean(m), r.std(m)) for m in metrics])
            else:
                body.append([r.display] + [MISSING] * len(metrics))
                notes.append(f"{r.display} skipped: {r.note}")
        n_ok = sum(r.ok for r in rows)
        label = "Mean" if n_ok == len(rows) else f"Mean ({n_ok} of {len(rows)} sets)"
        body.append([label] + [pct(set_mean(rows, m)) for m in metrics])
        notes.append("Values in %, mean ± std over trials; FPR: lower is better, AUROC/AUPR: higher is better.")
        columns = ["OOD set"] + [f"{header(m)} (%)" for m in metrics]
        tables.append(Table(_group_title(ev, model, detector, rows), columns, body, notes))
    return tables


def evaluation_csv(ev: Evaluation) -> str:
    """Long format: one line per (model, detector, set) plus a Mean line per group; values in percent."""
    metrics = list(table_metrics(ev)) + ["aupr_in", "detection_error"]
    cols = (["model", "detector", "ood_set", "dataset", "status"]
            + [f"{m}_{k}" for m in metrics for k in ("mean", "std")]
            + ["n_in", "n_out", "n_out_per_trial", "num_to_avg", "note"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for (model, detector), rows in ev.groups().items():
        for r in rows:
            line = {"model": model, "detector": detector, "ood_set": r.display, "dataset": r.ood["text"],
                    "status": r.status, "note": r.note}
            if r.ok:
                p = r.protocol
                line.update({f"{m}_mean": f"{100 * p['mean'][m]:.6f}" for m in metrics})
                line.update({f"{m}_std": f"{100 * p['std'][m]:.6f}" for m in metrics})
                line.update({k: p[k] for k in ("n_in", "n_out", "n_out_per_trial", "num_to_avg")})
            w.writerow(line)
        mean_line = {"model": model, "detector": detector, "ood_set": "Mean", "dataset": "",
                     "status": f"{sum(r.ok for r in rows)} of {len(rows)} sets"}
        for m in metrics:
            v = set_mean(rows, m)
            mean_line[f"{m}_mean"] = "" if v is None else f"{100 * v:.6f}"
        w.writerow(mean_line)
    return buf.getvalue()


def write_tables(tables: list[Table], out: Path, stem: str, csv_text: str) -> dict[str, Path]:
    """Write ``stem``.md/.tex/.csv under ``out``; returns the paths by format."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{stem}.md", "tex": out / f"{stem}.tex", "csv": out / f"{stem}.csv"}
    atomic_write_text(paths["md"], "\n".join(t.markdown() for t in tables))
    atomic_write_text(paths["tex"], "% generated by the OE study suite (analysis); needs \\usepackage{booktabs}\n"
                      + "\n".join(t.latex() for t in tables))
    atomic_write_text(paths["csv"], csv_text)
    return paths


def write_evaluation(ev: Evaluation, out: str | Path, stem: str = "results") -> dict[str, Path]:
    """results.json, .csv, .md and .tex of an evaluation under ``out``."""
    out = Path(out)
    paths = write_tables(evaluation_tables(ev), out, stem, evaluation_csv(ev))
    paths["json"] = out / f"{stem}.json"
    ev.save(paths["json"])
    return paths
