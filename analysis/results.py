"""What ``analysis.evaluate`` produces: one result per (model, detector, OOD set), saved as JSON.

Metric values are fractions as :mod:`oe_core.metrics` returns them; tables turn them into percentages.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from oe_core.errors import OEError
from oe_core.metrics import fpr_key
from oe_core.atomic import atomic_write_text

RESULTS_FORMAT = "oe-suite-results/1"
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
