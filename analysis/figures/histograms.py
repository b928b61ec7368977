"""ID-vs-OOD score histograms: one panel per OOD set for one (model, detector)."""
from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from oe_core.metrics import auroc

from .style import paper_style, panel_grid


def shared_bins(*arrays: np.ndarray, bins: int = 40) -> np.ndarray:
    """``bins`` equal-width bins over the pooled range of ``arrays`` (a unit-wide range if all are equal)."""
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def score_histograms(id_scores: np.ndarray, ood: dict[str, np.ndarray], *, id_name: str, units: str,
                     title: str, bins: int = 40) -> Figure:
    """Density histograms of the ID scores (filled) against each OOD set's (outline), a panel per set with
    the set's AUROC over all its images in the title."""
    with paper_style():
        fig, axes = panel_grid(len(ood), max_cols=3)
        for ax, (name, scores) in zip(axes, ood.items()):
            edges = shared_bins(id_scores, scores, bins=bins)
            ax.hist(id_scores, bins=edges, density=True, alpha=0.45, color="tab:blue")
            ax.hist(scores, bins=edges, density=True, histtype="step", linewidth=1.2, color="tab:red")
            ax.set_title(f"{name}: AUROC {100 * auroc(id_scores, scores):.1f}%")
            ax.set_xlabel(textwrap.fill(units, 30))
            ax.set_ylabel("density")
        fig.legend(handles=[Patch(color="tab:blue", alpha=0.45, label=f"{id_name} test (ID)"),
                            Patch(facecolor="none", edgecolor="tab:red", label="OOD set of the panel")],
                   loc="outside lower center", ncols=2)
        fig.suptitle(f"{title}: scores, higher = more anomalous")
    return fig
