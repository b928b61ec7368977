"""analysis.protocol: the reference's 1:5 subsample, trials, seeding and population std."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.protocol import evaluate_protocol, trial_subsample
from oe_core.errors import OEError
from oe_core.metrics import ood_metrics


def _data(n_in=500, n_out=1000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n_in), rng.normal(1.0, 1.0, size=n_out)


def test_subsample_size_distinct_and_seeded():
    idx = trial_subsample(1000, 100, seed=3, trial=0)
    assert idx.size == 100 and np.unique(idx).size == 100 and idx.min() >= 0 and idx.max() < 1000
    assert np.array_equal(idx, trial_subsample(1000, 100, seed=3, trial=0))
    assert not np.array_equal(idx, trial_subsample(1000, 100, seed=3, trial=1))
    assert not np.array_equal(idx, trial_subsample(1000, 100, seed=4, trial=0))
    assert np.array_equal(trial_subsample(50, 100, seed=0, trial=7), np.arange(50))


def test_trials_are_the_metrics_of_their_subsamples_and_std_is_population():
    s_in, s_out = _data()
    res = evaluate_protocol(s_in, s_out, num_to_avg=4, ratio=5, seed=9)
    assert res.n_in == 500 and res.n_out == 1000 and res.n_out_per_trial == 100
    for t in range(4):
        expect = ood_metrics(s_in, s_out[trial_subsample(1000, 100, 9, t)])
        for k, v in expect.items():
            assert res.trials[k][t] == v
    vals = res.trials["auroc"]
    mean = sum(vals) / 4
    pop_std = (sum((v - mean) ** 2 for v in vals) / 4) ** 0.5  # ddof=0, like the reference's np.std
    assert res["auroc"] == pytest.approx((mean, pop_std), abs=1e-15)
    assert res.std["auroc"] > 0
    assert set(res.summary()) == {"fpr95", "auroc", "aupr_out", "aupr_in", "detection_error"}


def test_deterministic_and_prefix_stable():
    s_in, s_out = _data(seed=1)
    a = evaluate_protocol(s_in, s_out, num_to_avg=5, seed=2)
    b = evaluate_protocol(s_in, s_out, num_to_avg=5, seed=2)
    c = evaluate_protocol(s_in, s_out, num_to_avg=3, seed=2)
    d = evaluate_protocol(s_in, s_out, num_to_avg=5, seed=3)
    assert a.to_dict() == b.to_dict()
    assert np.array_equal(a.trials["fpr95"][:3], c.trials["fpr95"])
    assert not np.array_equal(a.trials["auroc"], d.trials["auroc"])


def test_fewer_ood_than_the_ratio_uses_all_and_has_zero_std():
    s_in, s_out = _data(n_in=500, n_out=60)
    res = evaluate_protocol(s_in, s_out, num_to_avg=3)
    assert res.n_out_per_trial == 60
    expect = ood_metrics(s_in, s_out)
    for k, v in expect.items():
        assert np.all(res.trials[k] == v)
        assert res[k] == pytest.approx((v, 0.0), abs=1e-15)  # np.mean/np.std of equal values: rounding only


def test_rule_and_tpr_are_passed_through():
    s_in, s_out = _data(n_in=100, n_out=20)
    res = evaluate_protocol(s_in, s_out, num_to_avg=1, rule="first_geq", tpr=0.9)
    assert res.mean["fpr90"] == ood_metrics(s_in, s_out, tpr=0.9, rule="first_geq")["fpr90"]
    d = res.to_dict()
    assert d["rule"] == "first_geq" and len(d["trials"]["auroc"]) == 1


def test_bad_arguments():
    s_in, s_out = _data(n_in=10, n_out=10)
    with pytest.raises(OEError, match="num_to_avg"):
        evaluate_protocol(s_in, s_out, num_to_avg=0)
    with pytest.raises(OEError, match="ratio"):
        evaluate_protocol(s_in, s_out, ratio=0)
    with pytest.raises(OEError, match="leave no OOD"):
        evaluate_protocol(s_in[:3], s_out, ratio=5)
    with pytest.raises(OEError, match="in_scores"):
        evaluate_protocol([], s_out)
    with pytest.raises(OEError, match="no metric"):
        evaluate_protocol(s_in, s_out, num_to_avg=1, ratio=2)["fpr"]


def test_errors_name_the_argument_and_the_known_metrics():
    s_in, s_out = _data(n_in=10, n_out=10)
    with pytest.raises(OEError, match="^out_scores: 1 of 10 scores are not finite"):
        evaluate_protocol(s_in, np.r_[s_out[:9], np.nan])
    with pytest.raises(OEError, match="^in_scores: 1 of 10 scores are not finite"):
        evaluate_protocol(np.r_[s_in[:9], np.nan], s_out)
    with pytest.raises(OEError, match=r"no metric 'fpr'; metrics: fpr95, auroc, aupr_out, "):
        evaluate_protocol(s_in, s_out, num_to_avg=1, ratio=2)["fpr"]


def test_the_smallest_valid_ratio_and_subsample_are_accepted():
    s_in, s_out = _data(n_in=10, n_out=30)
    assert evaluate_protocol(s_in, s_out, num_to_avg=2, ratio=1).n_out_per_trial == 10   # ratio 1: as many as ID
    assert evaluate_protocol(s_in[:5], s_out, num_to_avg=2, ratio=5).n_out_per_trial == 1  # one OOD score a trial


def test_the_result_records_its_settings_and_the_default_seed_is_zero():
    s_in, s_out = _data(n_in=100, n_out=60)
    res = evaluate_protocol(s_in, s_out, num_to_avg=3, seed=4, tpr=0.9)
    assert (res.seed, res.tpr) == (4, 0.9)
    d = res.to_dict()
    assert (d["seed"], d["tpr"], d["num_to_avg"], d["ratio"]) == (4, 0.9, 3, 5)
    default = evaluate_protocol(s_in, s_out, num_to_avg=3)
    assert default.seed == 0
    np.testing.assert_array_equal(default.trials["auroc"], evaluate_protocol(s_in, s_out, num_to_avg=3,
                                                                             seed=0).trials["auroc"])
    assert not np.array_equal(default.trials["auroc"], evaluate_protocol(s_in, s_out, num_to_avg=3,
                                                                         seed=1).trials["auroc"])
