"""ROC curves of one (model, detector), one curve per OOD set (OOD is the positive class)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from oe_core.metrics import auroc, roc_curve

from .style import paper_style


def roc_figure(id_scores: np.ndarray, ood: dict[str, np.ndarray], *, title: str) -> Figure:
    """TPR (OOD detected) against FPR (ID flagged) for every OOD set, with the chance diagonal."""
    with paper_style():
        fig = Figure(figsize=(3.3, 3.1), layout="constrained")
        ax = fig.add_subplot()
        for name, scores in ood.items():
            fpr, tpr = roc_curve(id_scores, scores).with_origin()
            ax.plot(100 * fpr, 100 * tpr, linewidth=1.1, label=f"{name} (AUROC {100 * auroc(id_scores, scores):.1f}%)")
        ax.plot([0, 100], [0, 100], linestyle=":", color="grey", linewidth=0.8, label="chance")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate: ID flagged as OOD (%)")
        ax.set_ylabel("true positive rate: OOD detected (%)")
        ax.set_title(title)
        ax.legend(loc="lower right")
    return fig
