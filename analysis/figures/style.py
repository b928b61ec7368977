"""Figure style and saving: paper-sized figures, 7-8 pt text, PNG and PDF.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg/PDF canvases, no pyplot), so rendering
needs no display and leaves no global figure state behind.
"""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from oe_core.atomic import atomic_write_bytes

TEXT_WIDTH_IN = 5.5      # a single-column conference page (ICLR)
PANEL_HEIGHT_IN = 1.9
DPI = 200
FORMATS = ("png", "pdf")
RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 6.5, "xtick.labelsize": 7,
      "ytick.labelsize": 7, "figure.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False,
      "legend.frameon": False, "savefig.bbox": "tight", "pdf.fonttype": 42}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """The suite's rc settings, for building and for saving a figure."""
    with matplotlib.rc_context(RC):
        yield


def panel_grid(n: int, max_cols: int = 4, width: float = TEXT_WIDTH_IN,
               height: float = PANEL_HEIGHT_IN) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels in rows of at most ``max_cols``; unused grid cells are removed."""
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def save_figure(fig: Figure, stem: str | Path, formats: Sequence[str] = FORMATS, dpi: int = DPI) -> list[Path]:
    """Write ``stem.<format>`` for each of ``formats`` (PNG at ``dpi``; PDF is vector); returns the paths."""
    stem = Path(stem)
    paths = [stem.with_suffix(f".{f}") for f in formats]
    with paper_style():
        for p in paths:
            buf = io.BytesIO()
            fig.savefig(buf, format=p.suffix[1:], dpi=dpi)
            atomic_write_bytes(p, buf.getvalue())
    return paths
