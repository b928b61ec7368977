"""Property-based tests (hypothesis) for oe_core.metrics: invariances, symmetry, bounds, ties."""
from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from oe_core import metrics as M

# Small integers give many ties; every transform below maps distinct integers to distinct floats exactly.
scores = st.lists(st.integers(min_value=-40, max_value=40), min_size=1, max_size=60).map(
    lambda v: np.array(v, dtype=np.float64))
rules = st.sampled_from(M.FPR_RULES)
levels = st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0])

TRANSFORMS = {
    "affine": lambda x: 3.5 * x + 1000.0,
    "cube": lambda x: x ** 3 + x,
    "exp": lambda x: np.exp(x / 8.0),
    "arctan": lambda x: np.arctan(x / 3.0),
}

SETTINGS = settings(max_examples=60, deadline=None)


def _pairwise_auroc(s_in, s_out):
    d = s_out[:, None] - s_in[None, :]
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


@SETTINGS
@given(s_in=scores, s_out=scores, rule=rules, tpr=levels, name=st.sampled_from(sorted(TRANSFORMS)))
def test_invariant_under_strictly_increasing_transforms(s_in, s_out, rule, tpr, name):
    f = TRANSFORMS[name]
    assert M.ood_metrics(f(s_in), f(s_out), tpr=tpr, rule=rule) == M.ood_metrics(s_in, s_out, tpr=tpr, rule=rule)


@SETTINGS
@given(s_in=scores, s_out=scores)
def test_swapping_roles_complements_auroc(s_in, s_out):
    assert abs(M.auroc(s_in, s_out) - (1.0 - M.auroc(s_out, s_in))) < 1e-12
    assert abs(M.auroc(-s_in, -s_out) - (1.0 - M.auroc(s_in, s_out))) < 1e-12
    assert abs(M.auroc(s_in, s_out) - _pairwise_auroc(s_in, s_out)) < 1e-12


@SETTINGS
@given(s_in=scores, s_out=scores)
def test_aupr_in_is_aupr_out_with_roles_swapped_and_negated(s_in, s_out):
    assert M.aupr_in(s_in, s_out) == M.aupr_out(-s_out, -s_in)


@SETTINGS
@given(s_in=scores, s_out=scores, rule=rules, tpr=levels)
def test_bounds(s_in, s_out, rule, tpr):
    m = M.ood_metrics(s_in, s_out, tpr=tpr, rule=rule)
    for k, v in m.items():
        assert 0.0 <= v <= 1.0, (k, v)
    assert m["detection_error"] <= 0.5


@SETTINGS
@given(s_in=scores, s_out=scores, rule=st.sampled_from(["first_geq", "interp"]),
       t=st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.8, 0.9, 0.95, 1.0]), min_size=2, max_size=2, unique=True))
def test_fpr_grows_with_the_tpr_level(s_in, s_out, rule, t):
    lo, hi = sorted(t)
    assert M.fpr_at_tpr(s_in, s_out, lo, rule) <= M.fpr_at_tpr(s_in, s_out, hi, rule) + 1e-12


@SETTINGS
@given(s_in=scores, s_out=scores, tpr=levels)
def test_first_geq_is_achieved_by_a_threshold(s_in, s_out, tpr):
    """Some threshold catches >= tpr of OOD with exactly that FPR, and none with a smaller FPR."""
    fpr = M.fpr_at_tpr(s_in, s_out, tpr, "first_geq")
    ths = np.unique(np.r_[s_in, s_out])
    ok = [np.mean(s_in >= th) for th in ths if np.mean(s_out >= th) >= tpr]
    assert min(ok) == fpr


@SETTINGS
@given(n_in=st.integers(1, 50), n_out=st.integers(1, 50), value=st.floats(-1e6, 1e6, allow_nan=False))
def test_all_tied_scores(n_in, n_out, value):
    s_in, s_out = np.full(n_in, value), np.full(n_out, value)
    assert M.auroc(s_in, s_out) == 0.5
    assert abs(M.aupr_out(s_in, s_out) - n_out / (n_in + n_out)) < 1e-12
    assert M.fpr_at_tpr(s_in, s_out, rule="closest") == 1.0
    assert M.fpr_at_tpr(s_in, s_out, rule="first_geq") == 1.0
    # the curve is the diagonal from (0, 0) to (1, 1): interpolation gives FPR = TPR
    assert abs(M.fpr_at_tpr(s_in, s_out, rule="interp") - 0.95) < 1e-12
    assert M.detection_error(s_in, s_out) == 0.5


@SETTINGS
@given(s_in=scores, gap=st.integers(1, 5), s_out=scores)
@example(s_in=np.array([0.0, 0.0, 0.0, 1.0, 1.0, -1.0]), gap=1, s_out=np.array([0.0]))  # 6 x 1/6 != 1 in floats
def test_perfect_separation(s_in, gap, s_out):
    shifted = s_out - s_out.min() + s_in.max() + gap
    m = M.ood_metrics(s_in, shifted)
    assert m["auroc"] == 1.0
    assert abs(m["aupr_out"] - 1.0) < 1e-12 and abs(m["aupr_in"] - 1.0) < 1e-12
    assert m["fpr95"] == 0.0 and m["detection_error"] == 0.0
