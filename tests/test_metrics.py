"""oe_core.metrics against sklearn, independent re-implementations and hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oe_core import metrics as M
from oe_core.errors import OEError


def _tied_data(rng: np.random.Generator, n_in: int, n_out: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued scores on few levels (many ties), OOD shifted up; scaled to non-integers."""
    s_in = rng.integers(0, levels, n_in).astype(np.float64) * 0.37 - 3.0
    s_out = (rng.integers(0, levels, n_out) + rng.integers(0, 3, n_out)).astype(np.float64) * 0.37 - 3.0
    return s_in, s_out


def _labels(s_in, s_out):
    return np.r_[np.zeros(len(s_in)), np.ones(len(s_out))], np.r_[s_in, s_out]


# ----------------------------------------------------------------------------- independent references
def reference_fpr_closest(s_in, s_out, recall_level=0.95):
    """The reference's rule re-derived from its description with explicit arrays: sort descending,
    one point per distinct score, truncate at full recall, reverse, append the (recall 1, fps 0)
    sentinel, take the first argmin of |recall - level|."""
    y, s = _labels(s_in, s_out)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_run = np.where(np.diff(s) != 0)[0]
    idx = np.concatenate([last_of_run, [s.size - 1]])
    tps = np.cumsum(y)[idx]
    fps = idx + 1 - tps
    recall = tps / tps[-1]
    stop = np.where(tps == tps[-1])[0][0]
    recall = np.concatenate([recall[stop::-1], [1.0]])
    fps = np.concatenate([fps[stop::-1], [0.0]])
    return fps[np.argmin(np.abs(recall - recall_level))] / len(s_in)


def loop_fpr_closest(s_in, s_out, level=0.95):
    """The same rule as a plain Python loop over thresholds (no sorting tricks)."""
    pts = []
    for th in sorted(set(np.r_[s_in, s_out].tolist()), reverse=True):
        tp = int(np.sum(s_out >= th))
        fp = int(np.sum(s_in >= th))
        pts.append((abs(tp / len(s_out) - level), -fp))
        if tp == len(s_out):
            break
    return -min(pts)[1] / len(s_in)


def loop_fpr_first_geq(s_in, s_out, level=0.95):
    """min FPR over thresholds with TPR >= level."""
    best = 1.0
    for th in set(np.r_[s_in, s_out].tolist()):
        if np.sum(s_out >= th) / len(s_out) >= level:
            best = min(best, np.sum(s_in >= th) / len(s_in))
    return best


def mann_whitney_auroc(s_in, s_out):
    """P(s_out > s_in) + P(s_out == s_in)/2 over all pairs."""
    d = s_out[:, None] - s_in[None, :]
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


# ----------------------------------------------------------------------------- sklearn agreement
@pytest.mark.parametrize("seed", range(6))
def test_auroc_aupr_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    s_in, s_out = _tied_data(rng, rng.integers(5, 400), rng.integers(3, 120), levels=int(rng.integers(2, 30)))
    y, s = _labels(s_in, s_out)
    assert M.auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.aupr_out(s_in, s_out) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.aupr_in(s_in, s_out) == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    assert M.auroc(s_in, s_out) == pytest.approx(mann_whitney_auroc(s_in, s_out), abs=1e-12)


def test_match_sklearn_on_continuous_scores():
    rng = np.random.default_rng(11)
    s_in, s_out = rng.normal(size=3000), rng.normal(0.8, 1.3, size=600)
    y, s = _labels(s_in, s_out)
    assert M.auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.aupr_out(s_in, s_out) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_no_sigmoid_squashing_of_large_scores():
    """Energies/log-likelihoods in the thousands keep their order (torchmetrics' sigmoid would tie them)."""
    s_in = np.array([5000.0, 5001.0, 5002.0, 5003.0])
    s_out = np.array([5004.0, 5005.0])
    assert M.auroc(s_in, s_out) == 1.0
    assert M.fpr_at_tpr(s_in, s_out) == 0.0
    assert M.aupr_out(s_in, s_out) == 1.0


# ----------------------------------------------------------------------------- FPR rules
@pytest.mark.parametrize("seed", range(8))
def test_closest_rule_matches_reference_reimplementations(seed):
    rng = np.random.default_rng(100 + seed)
    s_in, s_out = _tied_data(rng, rng.integers(20, 500), rng.integers(4, 150), levels=int(rng.integers(3, 40)))
    got = M.fpr_at_tpr(s_in, s_out, rule="closest")
    assert got == reference_fpr_closest(s_in, s_out)
    assert got == loop_fpr_closest(s_in, s_out)


@pytest.mark.parametrize("seed", range(6))
def test_first_geq_and_interp_match_independent_versions(seed):
    rng = np.random.default_rng(200 + seed)
    s_in, s_out = _tied_data(rng, rng.integers(20, 500), rng.integers(4, 150), levels=int(rng.integers(3, 40)))
    assert M.fpr_at_tpr(s_in, s_out, rule="first_geq") == pytest.approx(loop_fpr_first_geq(s_in, s_out), abs=1e-15)
    y, s = _labels(s_in, s_out)
    fpr, tpr, _ = roc_curve(y, s)  # ood-metrics: sklearn's curve (intermediate points dropped), then np.interp
    assert M.fpr_at_tpr(s_in, s_out, rule="interp") == pytest.approx(float(np.interp(0.95, tpr, fpr)), abs=1e-12)


def test_hand_worked_three_rules_differ():
    """OOD [10, 9, 5, 1], ID [8, 5, 5, 0], tpr=0.6.  Curve points (TPR, #FP):
    (.25,0) (.5,0) (.5,1) [score 8] (.75,3) [score 5: one OOD and two ID tied] (1,3) [score 1] (1,4).
    closest: |.5-.6|=.1 < |.75-.6|=.15 -> recall .5 with the most FP (1) -> 1/4.
    first_geq: first TPR >= .6 is (.75, 3) -> 3/4.
    interp: between (FPR 1/4, TPR .5) and (3/4, .75): 1/4 + (.1/.25)(1/2) = 0.45."""
    s_in, s_out = np.array([8.0, 5, 5, 0]), np.array([10.0, 9, 5, 1])
    assert M.fpr_at_tpr(s_in, s_out, 0.6, "closest") == 0.25
    assert M.fpr_at_tpr(s_in, s_out, 0.6, "first_geq") == 0.75
    assert M.fpr_at_tpr(s_in, s_out, 0.6, "interp") == pytest.approx(0.45, abs=1e-15)


def test_hand_worked_closest_takes_most_false_positives():
    """OOD [10, 9, 5, 1], ID [8, 7, 4, 3, 2, 0], tpr=0.7: recall .75 is nearest (|.05|) and holds for
    thresholds 5, 4, 3, 2 with 2..5 false positives.  closest -> the most, 5/6; first_geq -> 2/6."""
    s_in, s_out = np.array([8.0, 7, 4, 3, 2, 0]), np.array([10.0, 9, 5, 1])
    assert M.fpr_at_tpr(s_in, s_out, 0.7, "closest") == pytest.approx(5 / 6, abs=1e-15)
    assert M.fpr_at_tpr(s_in, s_out, 0.7, "first_geq") == pytest.approx(2 / 6, abs=1e-15)
    assert M.fpr_at_tpr(s_in, s_out, 0.7, "interp") == pytest.approx(2 / 6, abs=1e-15)


def test_hand_worked_default_95_exact_recall():
    """20 OOD: 18 above every ID, one at 40, one at 20; ID at 50, 30, 29, 10 (n_in=4).
    Recall .95 (19/20) is reached at threshold 40 with 1 FP and holds down to 29 with 3 FP.
    closest -> 3/4 (most FP at recall .95); first_geq -> 1/4; interp (np.interp semantics) -> 3/4."""
    s_out = np.r_[np.arange(100.0, 82.0, -1.0), 40.0, 20.0]
    s_in = np.array([50.0, 30.0, 29.0, 10.0])
    assert s_out.size == 20
    assert M.fpr_at_tpr(s_in, s_out) == 0.75
    assert M.fpr_at_tpr(s_in, s_out, rule="first_geq") == 0.25
    assert M.fpr_at_tpr(s_in, s_out, rule="interp") == 0.75


def test_closest_never_uses_points_after_full_recall():
    """All OOD above all ID: full recall at 0 FP, so FPR95 is 0 whatever follows."""
    s_in, s_out = np.array([0.0, 1.0, 2.0]), np.array([5.0, 6.0])
    for rule in M.FPR_RULES:
        assert M.fpr_at_tpr(s_in, s_out, rule=rule) == 0.0


def test_detection_error_hand_worked():
    """OOD [3, 1], ID [2, 0]: thresholds 3 -> .5(1-.5)+0 = .25; 2 -> .25+.25 = .5; 1 -> 0+.25; min .25."""
    assert M.detection_error([2.0, 0.0], [3.0, 1.0]) == 0.25
    assert M.detection_error([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert M.detection_error([2.0, 3.0], [0.0, 1.0]) == 0.5


def test_detection_error_matches_brute_force():
    rng = np.random.default_rng(5)
    s_in, s_out = _tied_data(rng, 300, 80, levels=12)
    brute = min(0.5 * (1 - np.mean(s_out >= t)) + 0.5 * np.mean(s_in >= t)
                for t in np.r_[np.inf, s_in, s_out])
    assert M.detection_error(s_in, s_out) == pytest.approx(brute, abs=1e-15)


def test_ood_metrics_bundles_the_same_values():
    rng = np.random.default_rng(3)
    s_in, s_out = _tied_data(rng, 200, 40, levels=15)
    got = M.ood_metrics(s_in, s_out, tpr=0.9, rule="first_geq")
    assert got == {
        "fpr90": M.fpr_at_tpr(s_in, s_out, 0.9, "first_geq"),
        "auroc": M.auroc(s_in, s_out), "aupr_out": M.aupr_out(s_in, s_out),
        "aupr_in": M.aupr_in(s_in, s_out), "detection_error": M.detection_error(s_in, s_out)}
    assert M.fpr_key(0.95) == "fpr95" and M.fpr_key(0.995) == "fpr99.5"


def test_accepts_torch_tensors_and_lists():
    s_in = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float32)
    assert M.auroc(s_in, [0.25, 0.4]) == pytest.approx(mann_whitney_auroc(s_in.double().numpy(),
                                                                          np.array([0.25, 0.4])))


# ----------------------------------------------------------------------------- input validation
@pytest.mark.parametrize("bad, what", [
    (np.zeros((3, 2)), "1-D"), ([], "empty"), ([0.1, np.nan], "not finite"), ([np.inf, 0.0], "not finite"),
    (["a", "b"], "cannot be read"), (5.0, "1-D")])
def test_bad_scores_raise_one_clear_error(bad, what):
    with pytest.raises(OEError, match=what) as e:
        M.auroc(bad, [1.0, 2.0])
    assert "in_scores" in str(e.value)
    with pytest.raises(OEError, match="out_scores"):
        M.ood_metrics([1.0, 2.0], bad)


def test_bad_rule_and_tpr():
    with pytest.raises(OEError, match="unknown FPR rule"):
        M.fpr_at_tpr([0.0], [1.0], rule="nearest")
    for t in (0.0, 1.5, -0.1):
        with pytest.raises(OEError, match="tpr must be"):
            M.fpr_at_tpr([0.0], [1.0], tpr=t)


@pytest.mark.parametrize("metric", [M.roc_curve, M.auroc, M.aupr_out, M.aupr_in, M.fpr_at_tpr, M.detection_error,
                                    M.ood_metrics])
def test_every_metric_names_the_bad_argument(metric):
    with pytest.raises(OEError, match=r"^in_scores: 1 of 2 scores are not finite"):
        metric([0.1, np.nan], [1.0, 2.0])
    with pytest.raises(OEError, match=r"^out_scores: 1 of 2 scores are not finite"):
        metric([1.0, 2.0], [0.1, np.nan])
    with pytest.raises(OEError, match=r"^scores: is empty"):
        M.as_scores([])


def test_bad_rule_and_tpr_messages_name_the_choices():
    with pytest.raises(OEError, match=r"^unknown FPR rule 'nearest'; rules: closest, first_geq, interp$"):
        M.ood_metrics([0.0], [1.0], rule="nearest")
    with pytest.raises(OEError, match=r"^tpr must be in \(0, 1\], got 0.0$"):
        M.ood_metrics([0.0], [1.0], tpr=0.0)
    assert M.fpr_at_tpr([0.0, 0.5], [0.2, 1.0], tpr=1.0) == 0.5   # tpr 1 is allowed: every OOD score caught


def test_fpr_key_defaults_to_the_papers_fpr95_and_rounds_to_a_millionth_of_a_percent():
    assert M.fpr_key() == "fpr95" and M.fpr_key(0.9) == "fpr90" and M.fpr_key(0.999) == "fpr99.9"
    assert M.fpr_key(0.0000012345) == "fpr0.000123"   # 0.00012345 % rounded to 6 decimals


def test_torch_scores_that_numpy_cannot_read_directly_are_accepted():
    grad = torch.tensor([0.5, 1.5], requires_grad=True)       # np.asarray refuses tensors that require grad
    half = torch.tensor([0.25, 2.0], dtype=torch.bfloat16)     # numpy has no bfloat16
    np.testing.assert_array_equal(M.as_scores(grad), [0.5, 1.5])
    np.testing.assert_array_equal(M.as_scores(half), [0.25, 2.0])
    assert M.as_scores(half).dtype == np.float64


def test_roc_curve_thresholds_are_the_distinct_scores_descending():
    curve = M.roc_curve([0.1, 0.5, 0.5], [0.5, 0.9])
    np.testing.assert_array_equal(curve.thresholds, [0.9, 0.5, 0.1])
    np.testing.assert_array_equal(curve.tps, [1, 2, 2])
    np.testing.assert_array_equal(curve.fps, [0, 2, 3])
    assert curve.fps.dtype == np.float64
