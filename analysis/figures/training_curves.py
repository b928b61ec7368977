"""Training curves from run folders' ``metrics.csv`` (column ``epoch`` plus any metrics), one panel per metric."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from oe_core.errors import OEError

from .style import paper_style, panel_grid


def read_metrics_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a run's ``metrics.csv`` (non-numeric cells become NaN); must have ``epoch``."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise OEError(f"no training history at {str(path)!r} (runs write metrics.csv into their folder)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise OEError(f"{str(path)!r} has no 'epoch' column (or no rows)")

    def num(v: str) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    cols = {k: np.array([num(r.get(k)) for r in rows]) for k in rows[0]}
    return {k: v for k, v in cols.items() if k == "epoch" or np.isfinite(v).any()}


def training_curves(runs: dict[str, dict[str, np.ndarray]], title: str = "Training curves") -> Figure:
    """Every metric column (union over runs) against epoch; one line per run."""
    metrics = []
    for cols in runs.values():
        metrics += [k for k in cols if k != "epoch" and k not in metrics]
    if not metrics:
        raise OEError("the training histories have no metric columns besides 'epoch'")
    with paper_style():
        fig, axes = panel_grid(len(metrics), max_cols=3)
        for ax, metric in zip(axes, metrics):
            for label, cols in runs.items():
                if metric in cols:
                    ok = np.isfinite(cols[metric])
                    ax.plot(cols["epoch"][ok], cols[metric][ok], marker="o", markersize=2, linewidth=1.0,
                            label=label)
            ax.set_title(metric)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric.replace("_", " "))
            ax.legend(loc="best")
        fig.suptitle(title)
    return fig
