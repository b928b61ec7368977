"""The paper's Figure 2 analogue: bits-per-dim histograms of ID and OOD test images, baseline vs OE model."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .histograms import shared_bins
from .style import TEXT_WIDTH_IN, paper_style, panel_grid

COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple")


def bpd_histograms(panels: dict[str, dict[str, np.ndarray]], *, bins: int = 50,
                   title: str = "Bits per dimension: in-distribution vs OOD test images") -> Figure:
    """One panel per model (e.g. baseline, +OE), one histogram per set, dashed lines at the means;
    all panels share the x range."""
    arrays = [a for sets in panels.values() for a in sets.values()]
    edges = shared_bins(*arrays, bins=bins)
    with paper_style():
        fig, axes = panel_grid(len(panels), max_cols=2, width=TEXT_WIDTH_IN, height=2.2)
        for ax, (model, sets) in zip(axes, panels.items()):
            for color, (name, bpd) in zip(COLORS, sets.items()):
                mean = float(np.mean(bpd))
                ax.hist(bpd, bins=edges, density=True, alpha=0.45, color=color, label=f"{name} (mean {mean:.2f})")
                ax.axvline(mean, color=color, linestyle="--", linewidth=1.0)
            ax.set_title(model)
            ax.set_xlabel("bits per dimension")
            ax.set_ylabel("density")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # headroom for the legend
            ax.legend(loc="upper left")
        fig.suptitle(title)
    return fig
