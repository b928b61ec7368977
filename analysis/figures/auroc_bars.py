"""Per-set AUROC bar chart: likelihood vs MSP (or any detectors), with std error bars and chance at 50%."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .style import TEXT_WIDTH_IN, paper_style


def auroc_bars(series: dict[str, dict[str, tuple[float, float]]], sets: list[str], *,
               title: str = "AUROC per OOD set", ylabel: str = "AUROC (%)") -> Figure:
    """Grouped bars: ``series[name][set] = (mean, std)`` as fractions; sets missing from a series are gaps."""
    with paper_style():
        fig = Figure(figsize=(TEXT_WIDTH_IN, 2.4), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / max(len(series), 1)
        x = np.arange(len(sets))
        for i, (name, values) in enumerate(series.items()):
            means = np.array([100 * values[s][0] if s in values else np.nan for s in sets])
            stds = np.array([100 * values[s][1] if s in values else 0.0 for s in sets])
            ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds, capsize=1.5, label=name,
                   error_kw={"linewidth": 0.6})
        ax.axhline(50, color="grey", linestyle=":", linewidth=0.8, label="chance (50%)")
        ax.set_xticks(x, sets, rotation=20, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("OOD set")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
