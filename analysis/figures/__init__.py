"""Figures of the study, one module per kind, each returning a :class:`matplotlib.figure.Figure`:

* :func:`score_histograms` -- ID-vs-OOD score histograms, a panel per OOD set;
* :func:`roc_figure` -- ROC curves, a curve per OOD set;
* :func:`auroc_bars` -- per-set AUROC bars of several detectors/models (likelihood vs MSP);
* :func:`bpd_histograms` -- bits-per-dim histograms, a panel per model (the paper's Figure 2);
* :func:`training_curves` -- metrics against epoch from runs' ``metrics.csv``.

:func:`save_figure` writes PNG and PDF.  ``python -m analysis.figures`` renders them from the score cache.
"""
from .auroc_bars import auroc_bars
from .bpd_histogram import bpd_histograms
from .histograms import score_histograms
from .roc import roc_figure
from .style import save_figure
from .training_curves import read_metrics_csv, training_curves

__all__ = ["auroc_bars", "bpd_histograms", "read_metrics_csv", "roc_figure", "save_figure", "score_histograms",
           "training_curves"]
