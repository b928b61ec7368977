"""What ``analysis.evaluate`` produces: one result per (model, detector, OOD set), saved as ``results.json`` and
rendered as ``results.{csv,md,tex}`` (:func:`write_evaluation`).

Metric values are fractions as :mod:`oe_core.metrics` returns them; the tables turn them into percentages (mean ±
std over trials).  One table per (model, detector): a row per OOD set and the unweighted mean over the evaluated
sets (the reference's "Mean Test Results"; it has no std).  A set that was skipped shows dashes and a note saying
why.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from oe_core.atomic import atomic_write_text
from oe_core.errors import OEError
from oe_core.metrics import fpr_key

from .tables import MISSING, Table, header, pct, write_tables

RESULTS_FORMAT = "oe-suite-results/1"
PAPER_METRICS = ("auroc", "aupr_out")  # with the FPR metric first; see table_metrics()
_SETTINGS = ("id_dataset", "ood", "num_to_avg", "ratio", "seed", "rule", "tpr", "limit", "cache_dir")


@dataclass
class SetResult:
    """The protocol's outcome for one OOD set (``status`` "ok"), or why it is missing (``status`` "missing")."""

    model: str
    detector: str
    ood: dict                      # DatasetSpec.to_dict()
    display: str                   # the set's printed name
    status: str = "ok"
    note: str = ""
    protocol: Optional[dict] = None  # ProtocolResult.to_dict()
    digest: str = ""               # weights digest of the scores

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def mean(self, metric: str) -> float:
        return self.protocol["mean"][metric]

    def std(self, metric: str) -> float:
        return self.protocol["std"][metric]


@dataclass
class Evaluation:
    """Settings, models and per-set results of one evaluation."""

    settings: dict
    models: list[dict]             # label, kind, digest, source
    rows: list[SetResult] = field(default_factory=list)

    @property
    def fpr_metric(self) -> str:
        return fpr_key(self.settings.get("tpr", 0.95))

    def groups(self) -> dict[tuple[str, str], list[SetResult]]:
        """Rows grouped by (model label, detector), in evaluation order."""
        out: dict[tuple[str, str], list[SetResult]] = {}
        for r in self.rows:
            out.setdefault((r.model, r.detector), []).append(r)
        return out

    def group(self, model: str, detector: str) -> list[SetResult]:
        rows = self.groups().get((model, detector))
        if rows is None:
            have = ", ".join(f"{m}:{d}" for m, d in self.groups())
            raise OEError(f"no results for model {model!r} with detector {detector!r}; have: {have}")
        return rows

    def cache_dir(self, results_path: str | Path) -> Path:
        """The score cache of these results (stored relative to the results file)."""
        return (Path(results_path).parent / self.settings["cache_dir"]).resolve()

    def save(self, path: str | Path) -> None:
        doc = {"format": RESULTS_FORMAT, "settings": self.settings, "models": self.models,
               "rows": [asdict(r) for r in self.rows]}
        atomic_write_text(Path(path), json.dumps(doc, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Evaluation":
        path = Path(path)
        if not path.is_file():
            raise OEError(f"results file {str(path)!r} does not exist (run python -m analysis.evaluate first)")
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise OEError(f"results file {str(path)!r} is not valid JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
            raise OEError(f"{str(path)!r} is not a results file of analysis.evaluate ({RESULTS_FORMAT})")
        try:
            ev = cls(doc["settings"], doc["models"], [SetResult(**r) for r in doc["rows"]])
            _read_every_field(ev)
        except (KeyError, TypeError, AttributeError) as e:
            what = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise OEError(f"results file {str(path)!r} does not have the shape of {RESULTS_FORMAT} ({what})") from None
        return ev


def _read_every_field(ev: Evaluation) -> None:
    """Touch every field the tools read (KeyError/TypeError when the file has another shape)."""
    fields = [ev.settings[k] for k in _SETTINGS] + [(m["label"], m["kind"]) for m in ev.models]
    fields += [(r.ood["name"], r.ood["split"], r.protocol["mean"], r.protocol["std"]) if r.ok else r.ood["name"]
               for r in ev.rows]
    del fields


def relative_to(target: str | Path, folder: str | Path) -> str:
    """``target`` as a path relative to ``folder`` (how results files refer to their score cache)."""
    return os.path.relpath(Path(target).resolve(), Path(folder).resolve())


def table_metrics(ev: Evaluation) -> list[str]:
    """The paper's three metrics: FPR at the TPR level, AUROC, AUPR (OOD positive)."""
    return [ev.fpr_metric, *PAPER_METRICS]


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


def write_evaluation(ev: Evaluation, out: str | Path, stem: str = "results") -> dict[str, Path]:
    """results.json, .csv, .md and .tex of an evaluation under ``out``."""
    out = Path(out)
    paths = write_tables(evaluation_tables(ev), out, stem, evaluation_csv(ev))
    paths["json"] = out / f"{stem}.json"
    ev.save(paths["json"])
    return paths
