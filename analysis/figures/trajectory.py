"""The AUROC-over-training trajectory: bits/dim AUROC of an OOD set against training step and test bits/dim."""
from __future__ import annotations

from typing import Sequence

from matplotlib.figure import Figure

from .style import paper_style, panel_grid


def trajectory_figure(curves: dict[str, Sequence[dict]], ood: str) -> Figure:
    """Two panels, one line per model: AUROC (%) against optimizer step, and against test bits/dim.
    ``curves[label]`` holds rows with ``step``, ``test_bpd`` and ``auroc`` (a fraction)."""
    with paper_style():
        fig, (by_step, by_bpd) = panel_grid(2, max_cols=2)
        for label, rows in curves.items():
            steps = [r["step"] for r in rows]
            bpd = [r["test_bpd"] for r in rows]
            au = [100.0 * r["auroc"] for r in rows]
            by_step.plot(steps, au, marker="o", markersize=3, linewidth=1.0, label=label)
            by_bpd.plot(bpd, au, marker="o", markersize=3, linewidth=1.0, label=label)
        for ax in (by_step, by_bpd):
            ax.axhline(50.0, color="grey", linewidth=0.6, linestyle="--")
            ax.set_ylabel("bits/dim AUROC (%)")
            ax.set_ylim(0, 100)
        by_step.set_xlabel("training step")
        by_bpd.set_xlabel("test bits/dim (lower: better trained)")
        by_bpd.invert_xaxis()   # training moves right in both panels
        by_step.legend()
        fig.suptitle(f"Does the likelihood's failure on {ood} survive training?\n"
                     f"(AUROC of bits/dim, {ood} vs the test images; below 50%: {ood} looks more likely)",
                     fontsize="medium")
    return fig
