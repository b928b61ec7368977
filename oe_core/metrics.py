"""OOD-detection metrics in float64, computed from the exact ROC curve (never through a sigmoid).

Conventions (the reference's ``get_measures(out_score, in_score)``): every score is oriented so that **higher =
more anomalous**; **OOD is the positive class** (TPR: the fraction of OOD samples at or above a threshold, FPR: of
in-distribution (ID) samples); every metric is a fraction in [0, 1].  The curve is evaluated at every *distinct*
score, so ties move together and are never split by input order.  Unlike torchmetrics, scores outside [0, 1] are
used as they are (a sigmoid turns large energies or log-likelihoods into ties).

:func:`auroc` equals ``sklearn.roc_auc_score`` with OOD labelled 1, :func:`aupr_out` (the paper's "AUPR")
``sklearn.average_precision_score``.  :func:`fpr_at_tpr`, the FPR when ``tpr`` (95%) of OOD is caught, has three
published rules:

  ``"closest"`` (the reference's ``fpr_and_fdr_at_recall``; HOE, torch-uncertainty): over the curve points from
      the highest threshold down to the first with full recall, the point whose recall is nearest to ``tpr``; among
      equally near points, the one with the most false positives (the reference's ``argmin`` over reversed
      arrays; its sentinel point can never win that tie-break, so it is left out).
  ``"first_geq"`` (OpenOOD, pytorch-ood): the smallest FPR with TPR >= ``tpr`` (over every point; OpenOOD's
      ``drop_intermediate=True`` can very rarely skip a collinear one).
  ``"interp"`` (ood-metrics): FPR linearly interpolated in TPR along the curve from (0, 0), as ``np.interp(tpr,
      TPR, FPR)``: where the curve runs flat exactly at TPR = ``tpr``, the *largest* FPR of that stretch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import OEError

FPR_RULES = ("closest", "first_geq", "interp")


def as_scores(x: Any, name: str = "scores") -> np.ndarray:
    """Return ``x`` as a 1-D float64 array; raise :class:`OEError` unless it is non-empty and finite."""
    if hasattr(x, "detach"):  # a torch tensor, possibly on an accelerator
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise OEError(f"{name}: cannot be read as numbers ({e})") from None
    if arr.ndim != 1:
        raise OEError(f"{name}: expected a 1-D array of per-image scores, got shape {arr.shape}")
    if arr.size == 0:
        raise OEError(f"{name}: is empty; at least one score is needed")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise OEError(f"{name}: {bad.size} of {arr.size} scores are not finite "
                      f"(first at index {bad[0]}: {arr[bad[0]]})")
    return arr


@dataclass(frozen=True)
class RocCurve:
    """The ROC curve at every distinct score, thresholds descending (``score >= threshold`` is OOD); ``tps``/``fps``
    count OOD/ID samples at or above each threshold (the starting point, 0 TP and 0 FP, is not stored)."""

    thresholds: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    n_out: int
    n_in: int

    @property
    def tpr(self) -> np.ndarray:
        return self.tps / self.n_out

    @property
    def fpr(self) -> np.ndarray:
        return self.fps / self.n_in

    def with_origin(self) -> tuple[np.ndarray, np.ndarray]:
        """(fpr, tpr) with the (0, 0) starting point prepended."""
        return np.r_[0.0, self.fpr], np.r_[0.0, self.tpr]


def roc_curve(in_scores: Any, out_scores: Any) -> RocCurve:
    """The exact ROC curve of ``out_scores`` (positives) against ``in_scores`` (negatives)."""
    s_in = as_scores(in_scores, "in_scores")
    s_out = as_scores(out_scores, "out_scores")
    scores = np.concatenate([s_out, s_in])
    is_out = np.concatenate([np.ones(s_out.size), np.zeros(s_in.size)])
    order = np.argsort(scores, kind="stable")[::-1]
    scores, is_out = scores[order], is_out[order]
    # the last index of each run of equal scores closes one threshold
    ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1]
    tps = np.cumsum(is_out)[ends]
    fps = (ends + 1) - tps
    return RocCurve(thresholds=scores[ends], tps=tps, fps=fps.astype(np.float64),
                    n_out=s_out.size, n_in=s_in.size)


def _auroc(curve: RocCurve) -> float:
    """Trapezoids in integer counts, divided once: the Mann-Whitney U with ties counted 1/2, exact where the
    answer is (perfect separation gives exactly 1.0, not a float sum of 1/n_in steps)."""
    fps = np.r_[0, curve.fps].astype(np.int64)
    tps = np.r_[0, curve.tps].astype(np.int64)
    twice_area = int(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])))
    return twice_area / (2 * curve.n_in * curve.n_out)


def auroc(in_scores: Any, out_scores: Any) -> float:
    """Area under the ROC curve with OOD positive: P(s_out > s_in) + P(s_out = s_in)/2 (0.5 = chance)."""
    return _auroc(roc_curve(in_scores, out_scores))


def _average_precision(curve: RocCurve) -> float:
    """sum_k (R_k - R_{k-1}) P_k over the distinct thresholds, R_0 = 0 (sklearn's AP)."""
    recall = np.r_[0.0, curve.tpr]
    precision = curve.tps / (curve.tps + curve.fps)
    return float(np.sum(np.diff(recall) * precision))


def aupr_out(in_scores: Any, out_scores: Any) -> float:
    """Average precision with OOD positive: the paper's AUPR."""
    return _average_precision(roc_curve(in_scores, out_scores))


def aupr_in(in_scores: Any, out_scores: Any) -> float:
    """Average precision with ID positive: the roles swap and the scores are negated."""
    s_in = as_scores(in_scores, "in_scores")
    s_out = as_scores(out_scores, "out_scores")
    return _average_precision(roc_curve(-s_out, -s_in))


def _fpr_closest(curve: RocCurve, tpr: float) -> float:
    full = int(np.searchsorted(curve.tps, curve.tps[-1]))  # first point with full recall
    tps, fps = curve.tps[: full + 1], curve.fps[: full + 1]
    distance = np.abs(tps / curve.tps[-1] - tpr)
    best = np.flatnonzero(distance == distance.min())
    return float(fps[best].max() / curve.n_in)


def _fpr_first_geq(curve: RocCurve, tpr: float) -> float:
    first = int(np.argmax(curve.tpr >= tpr))  # the last point has TPR 1, so one always exists
    return float(curve.fpr[first])


def _fpr_interp(curve: RocCurve, tpr: float) -> float:
    fprs, tprs = curve.with_origin()
    i = int(np.searchsorted(tprs, tpr, side="right")) - 1  # last point with TPR <= tpr
    if tprs[i] == tpr:
        return float(fprs[i])
    frac = (tpr - tprs[i]) / (tprs[i + 1] - tprs[i])
    return float(fprs[i] + frac * (fprs[i + 1] - fprs[i]))


_FPR_RULES: dict[str, Callable[[RocCurve, float], float]] = {
    "closest": _fpr_closest, "first_geq": _fpr_first_geq, "interp": _fpr_interp}


def _check_tpr(tpr: float, rule: str = "closest") -> tuple[float, str]:
    """``(tpr, rule)`` checked: ``tpr`` in (0, 1], ``rule`` one of :data:`FPR_RULES`."""
    tpr = float(tpr)
    if not 0.0 < tpr <= 1.0:
        raise OEError(f"tpr must be in (0, 1], got {tpr}")
    if rule not in _FPR_RULES:
        raise OEError(f"unknown FPR rule {rule!r}; rules: {', '.join(FPR_RULES)}")
    return tpr, rule


def fpr_at_tpr(in_scores: Any, out_scores: Any, tpr: float = 0.95, rule: str = "closest") -> float:
    """Fraction of ID samples flagged as OOD when ``tpr`` of the OOD samples are caught, by ``rule``, one of
    :data:`FPR_RULES` (see the module docstring); ``"closest"`` is the paper's."""
    tpr, rule = _check_tpr(tpr, rule)
    return _FPR_RULES[rule](roc_curve(in_scores, out_scores), tpr)


def _detection_error(curve: RocCurve) -> float:
    fpr, tpr = curve.with_origin()
    return float(np.min(0.5 * (1.0 - tpr) + 0.5 * fpr))


def detection_error(in_scores: Any, out_scores: Any) -> float:
    """min over thresholds of 0.5 (1 - TPR) + 0.5 FPR (equal class priors), trivial thresholds (0.5) included."""
    return _detection_error(roc_curve(in_scores, out_scores))


def fpr_key(tpr: float = 0.95) -> str:
    """The result-dict key of the FPR metric: ``"fpr95"`` for ``tpr=0.95``."""
    return f"fpr{round(_check_tpr(tpr)[0] * 100, 6):g}"


def ood_metrics(in_scores: Any, out_scores: Any, tpr: float = 0.95, rule: str = "closest") -> dict[str, float]:
    """All metrics as fractions: ``fpr95`` (key from :func:`fpr_key`), ``auroc``, ``aupr_out`` (the paper's AUPR),
    ``aupr_in`` and ``detection_error``."""
    tpr, rule = _check_tpr(tpr, rule)
    s_in = as_scores(in_scores, "in_scores")
    s_out = as_scores(out_scores, "out_scores")
    curve = roc_curve(s_in, s_out)
    return {fpr_key(tpr): _FPR_RULES[rule](curve, tpr), "auroc": _auroc(curve), "aupr_out": _average_precision(curve),
            "aupr_in": _average_precision(roc_curve(-s_out, -s_in)), "detection_error": _detection_error(curve)}
