"""The paper's evaluation defaults, 1:5 OOD:ID and 10 trials, in the protocol and in the evaluation CLI.

Each default is asserted where the code exposes it (the signature, the config dataclass, the parsed CLI) and by
what a call that leaves it unset really does (how many trials, how many OOD scores per trial).
"""
from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np

from analysis import protocol
from analysis.evaluate import EvaluateConfig, main
from analysis.protocol import evaluate_protocol
from oe_core.cli_config import parse_config
from tests.test_analysis_evaluate import classifier_ckpt

PAPER_RATIO, PAPER_TRIALS = 5, 10


def test_the_protocol_signature_defaults_to_one_to_five_and_ten_trials():
    params = inspect.signature(evaluate_protocol).parameters
    assert (params["ratio"].default, params["num_to_avg"].default) == (PAPER_RATIO, PAPER_TRIALS)


def test_a_default_protocol_call_draws_ten_trials_of_len_id_over_five(monkeypatch):
    draws = []
    real = protocol.trial_subsample

    def recording(n_out, size, seed, trial):
        draws.append((size, trial))
        return real(n_out, size, seed, trial)

    monkeypatch.setattr(protocol, "trial_subsample", recording)
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(size=1003), rng.normal(1.0, size=900)
    res = evaluate_protocol(s_in, s_out)
    assert draws == [(1003 // PAPER_RATIO, t) for t in range(PAPER_TRIALS)]
    assert all(len(v) == PAPER_TRIALS for v in res.trials.values())
    assert res.n_out_per_trial == 200 and (res.ratio, res.num_to_avg) == (PAPER_RATIO, PAPER_TRIALS)


def test_the_evaluation_config_and_cli_default_to_one_to_five_and_ten_trials():
    fields = {f.name: f.default for f in dataclasses.fields(EvaluateConfig)}
    assert (fields["ratio"], fields["num_to_avg"]) == (PAPER_RATIO, PAPER_TRIALS)
    cfg = parse_config(EvaluateConfig, ["--ckpt", "x"])
    assert (cfg.ratio, cfg.num_to_avg) == (PAPER_RATIO, PAPER_TRIALS)


def test_a_default_evaluation_run_averages_ten_trials_of_len_id_over_five(tmp_path):
    clf_path, _ = classifier_ckpt(tmp_path / "clf")
    argv = ["--ckpt", f"clf={clf_path}", "--id-dataset", "toy-shapes,size=8,n=40", "--ood", "gaussian,size=8,n=30",
            "--device", "cpu", "--batch-size", "40", "--no-progress", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert len(rows) == 1
    p = rows[0]["protocol"]
    assert p["n_in"] == 40 and p["n_out_per_trial"] == 40 // PAPER_RATIO
    assert (p["ratio"], p["num_to_avg"]) == (PAPER_RATIO, PAPER_TRIALS)
    assert all(len(v) == PAPER_TRIALS for v in p["trials"].values())
