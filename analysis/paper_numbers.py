"""The paper's published numbers (Hendrycks, Mazeika & Dietterich, ICLR 2019), as data.

Each cell is (FPR95, AUROC, AUPR) in percent, OOD positive, 1:5 OOD:ID, 10-trial means.  Sources (see
``shared/reference/oe-official-code.md``):

* WRN-40-2 MSP columns: the repository's ``CIFAR/snapshots/*_test.txt`` logs, which round to the paper's
  Table 7 / Table 1 ("+OE" is ``oe_tune``; App. C quotes ``oe_scratch``).  The logs call the other-CIFAR
  set by the in-distribution name; here it carries its real name.
* PixelCNN++ columns: the paper's Table 5 (BPP -> BPP+OE, CIFAR-10 in-distribution), one decimal.
* :data:`PAPER_BPD`: mean bits per pixel read from the paper's Figure 2 (CIFAR-10 test vs SVHN).
"""
from __future__ import annotations

from dataclasses import dataclass

from oe_core.errors import OEError

METRIC_INDEX = {"fpr95": 0, "auroc": 1, "aupr_out": 2}


@dataclass(frozen=True)
class PaperColumn:
    key: str
    title: str
    id_dataset: str
    detector: str
    source: str
    values: dict[str, tuple[float, float, float]]  # OOD dataset name -> (FPR95, AUROC, AUPR) in %
    mean: tuple[float, float, float]

    def value(self, ood: str, metric: str) -> float | None:
        """The paper's value (a fraction, like the suite's metrics) or ``None`` if not published."""
        if metric not in METRIC_INDEX or ood not in self.values:
            return None
        return self.values[ood][METRIC_INDEX[metric]] / 100.0

    def mean_value(self, metric: str) -> float | None:
        return self.mean[METRIC_INDEX[metric]] / 100.0 if metric in METRIC_INDEX else None


def _col(key, title, id_dataset, detector, source, rows, mean) -> PaperColumn:
    return PaperColumn(key, title, id_dataset, detector, source, dict(rows), mean)


_C10_SETS = ("gaussian", "rademacher", "blobs", "textures", "svhn", "places365", "lsun", "cifar100")
_C100_SETS = _C10_SETS[:-1] + ("cifar10",)
_LOGS = "outlier-exposure CIFAR/snapshots/*_test.txt (= paper Table 7)"
_TABLE5 = "paper Table 5 (PixelCNN++, CIFAR-10)"

_COLUMNS = [
    _col("c10-wrn-msp-baseline", "WRN-40-2 MSP (paper)", "cifar10", "msp", _LOGS, zip(_C10_SETS, [
        (14.39, 94.72, 70.00), (47.55, 79.93, 32.29), (16.20, 94.54, 73.71), (42.82, 88.37, 58.44),
        (28.82, 91.83, 66.93), (47.54, 87.80, 57.49), (38.74, 89.08, 58.58), (43.47, 87.88, 55.81)]),
        (34.94, 89.27, 59.16)),
    _col("c10-wrn-msp-oe-tune", "WRN-40-2 MSP+OE (paper)", "cifar10", "msp", _LOGS, zip(_C10_SETS, [
        (0.69, 99.60, 94.28), (0.49, 99.78, 97.39), (0.57, 99.83, 98.92), (12.16, 97.72, 90.97),
        (4.76, 98.43, 89.41), (17.28, 96.23, 87.27), (12.08, 97.57, 89.42), (27.95, 93.31, 76.22)]),
        (9.50, 97.81, 90.48)),
    _col("c10-wrn-msp-oe-scratch", "WRN-40-2 MSP+OE scratch (paper)", "cifar10", "msp", _LOGS, zip(_C10_SETS, [
        (0.29, 99.80, 96.49), (0.64, 99.65, 94.72), (0.88, 99.75, 97.75), (3.74, 99.07, 95.83),
        (2.11, 99.47, 97.08), (11.88, 97.24, 91.13), (5.99, 98.72, 93.84), (23.68, 94.79, 83.14)]),
        (6.15, 98.56, 93.75)),
    _col("c100-wrn-msp-baseline", "WRN-40-2 MSP (paper)", "cifar100", "msp", _LOGS, zip(_C100_SETS, [
        (54.27, 64.67, 19.70), (38.98, 79.37, 30.13), (58.01, 75.29, 29.69), (71.46, 73.81, 33.33),
        (69.28, 71.40, 30.69), (70.39, 74.23, 33.75), (73.99, 70.73, 28.82), (64.87, 75.41, 34.28)]),
        (62.66, 73.11, 30.05)),
    _col("c100-wrn-msp-oe-tune", "WRN-40-2 MSP+OE (paper)", "cifar100", "msp", _LOGS, zip(_C100_SETS, [
        (12.13, 95.70, 71.05), (17.12, 93.00, 56.86), (12.07, 97.15, 86.16), (54.39, 84.79, 56.31),
        (42.90, 86.86, 52.93), (49.76, 86.50, 57.92), (57.49, 83.42, 51.40), (62.10, 75.70, 32.59)]),
        (38.50, 87.89, 58.15)),
    _col("c100-wrn-msp-oe-scratch", "WRN-40-2 MSP+OE scratch (paper)", "cifar100", "msp", _LOGS, zip(_C100_SETS, [
        (26.24, 86.57, 39.33), (2.57, 98.95, 88.80), (3.19, 99.23, 95.39), (44.22, 89.61, 68.84),
        (23.41, 94.17, 75.96), (47.17, 87.76, 61.62), (57.53, 84.54, 56.12), (56.36, 79.39, 37.96)]),
        (32.59, 90.03, 65.50)),
    _col("c10-pixelcnn-bpp-baseline", "PixelCNN++ BPP (paper)", "cifar10", "bpd", _TABLE5, zip(_C10_SETS, [
        (0.0, 100.0, 100.0), (61.4, 44.2, 14.2), (17.2, 93.2, 60.0), (96.8, 69.4, 40.9),
        (98.8, 15.8, 9.7), (86.1, 74.8, 38.6), (76.9, 76.4, 36.5), (96.1, 52.4, 19.0)]),
        (66.6, 65.8, 39.9)),
    _col("c10-pixelcnn-bpp-oe", "PixelCNN++ BPP+OE (paper)", "cifar10", "bpd", _TABLE5, zip(_C10_SETS, [
        (0.0, 100.0, 99.6), (50.3, 56.5, 17.3), (1.3, 99.5, 96.2), (48.9, 88.8, 70.0),
        (86.9, 75.8, 60.0), (50.3, 89.3, 70.4), (43.2, 90.9, 72.4), (89.8, 68.5, 41.9)]),
        (46.4, 83.7, 66.0)),
]

PAPER_COLUMNS: dict[str, PaperColumn] = {c.key: c for c in _COLUMNS}

# Figure 2: mean bits per pixel of PixelCNN++ (CIFAR-10 in-distribution), baseline and after OE.
PAPER_BPD: dict[str, dict[str, float]] = {
    "baseline": {"cifar10": 3.06, "svhn": 2.98},
    "oe": {"cifar10": 3.08, "svhn": 3.43},
}


def paper_column(key: str) -> PaperColumn:
    if key not in PAPER_COLUMNS:
        raise OEError(f"unknown paper column {key!r}; known: {', '.join(PAPER_COLUMNS)}")
    return PAPER_COLUMNS[key]
