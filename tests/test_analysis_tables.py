"""Tables from synthetic score files (``analysis.evaluate --cached``) against hand-computed metrics."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from analysis.score_cache import ScoreCache, ScoreKey
from analysis.datasets import DatasetSpec
from analysis.evaluate import EvaluateConfig, main, run_evaluation
from analysis.protocol import trial_subsample
from analysis.results import Evaluation, evaluation_tables, write_evaluation
from analysis.tables import latex_escape
from oe_core.errors import OEError, cli_main
from tests.test_metrics import loop_fpr_closest

ID = "cifar10"


def write_scores(cache_dir, model: str, detector: str, sets: dict[str, np.ndarray], kind: str = "classifier",
                 digest: str = "w") -> None:
    """Score files for ``model``: ``sets`` maps dataset spec text -> scores (the ID set included)."""
    cache = ScoreCache(cache_dir)
    for text, scores in sets.items():
        spec = DatasetSpec.parse(text, default_split="test")
        cache.save(ScoreKey(model, detector, spec), scores, digest, kind=kind)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_hand_worked_table(tmp_path):
    """ID 0..9, OOD {9.5, 4.5}; ratio 5 -> 2 OOD per trial = all of them.
    AUROC: 9.5 beats 10 ID, 4.5 beats 5 -> 15/20 = 75%.  FPR95 (closest): recall .5 at 0 FP, recall 1 first
    at threshold 4.5 with 5 ID above -> |1-.95| < |.5-.95| -> 5/10 = 50%.
    AUPR: (R .5, P 1) then (R 1, P 2/7) -> .5 + .5 * 2/7 = 64.29%."""
    write_scores(tmp_path / "cache", "m", "msp", {ID: np.arange(10.0), "svhn": [9.5, 4.5]})
    ev = run_evaluation(EvaluateConfig(cached=["m"], cache_dir=str(tmp_path / "cache"), id_dataset=ID,
                                       ood=["svhn"], num_to_avg=3, out=str(tmp_path / "out")))
    paths = write_evaluation(ev, tmp_path / "out")
    md = paths["md"].read_text()
    assert "| SVHN | 50.00 ± 0.00 | 75.00 ± 0.00 | 64.29 ± 0.00 |" in md
    assert "| **Mean** | **50.00** | **75.00** | **64.29** |" in md
    rows = _read_csv(paths["csv"])
    assert rows[0]["ood_set"] == "SVHN" and float(rows[0]["auroc_mean"]) == pytest.approx(75.0, abs=1e-6)
    assert float(rows[0]["aupr_out_mean"]) == pytest.approx(50 + 50 * 2 / 7, abs=1e-6)
    assert rows[0]["n_out_per_trial"] == "2" and rows[1]["ood_set"] == "Mean"
    tex = paths["tex"].read_text()
    assert r"SVHN & 50.00 $\pm$ 0.00 & 75.00 $\pm$ 0.00 & 64.29 $\pm$ 0.00 \\" in tex
    assert Evaluation.load(paths["json"]).rows[0].protocol == ev.rows[0].protocol


def test_table_matches_independent_protocol_computation(tmp_path):
    rng = np.random.default_rng(0)
    s_in = rng.normal(size=500).round(1)  # rounding makes ties
    oods = {"gaussian": rng.normal(1.0, 1.0, 400).round(1), "textures": rng.normal(0.5, 1.0, 300).round(1),
            "svhn": rng.normal(0.2, 2.0, 80).round(1)}
    write_scores(tmp_path / "c", "m", "msp", {ID: s_in, **oods})
    ev = run_evaluation(EvaluateConfig(cached=["m"], cache_dir=str(tmp_path / "c"), id_dataset=ID,
                                       ood=list(oods), num_to_avg=4, seed=5, out=str(tmp_path)))
    rows = _read_csv(write_evaluation(ev, tmp_path)["csv"])
    means = {k: [] for k in ("fpr95", "auroc", "aupr_out")}
    for row, (name, s_out) in zip(rows, oods.items()):
        trials = {k: [] for k in means}
        for t in range(4):
            sub = s_out[trial_subsample(len(s_out), 100, 5, t)]
            y = np.r_[np.zeros(500), np.ones(len(sub))]
            trials["auroc"].append(roc_auc_score(y, np.r_[s_in, sub]))
            trials["aupr_out"].append(average_precision_score(y, np.r_[s_in, sub]))
            trials["fpr95"].append(loop_fpr_closest(s_in, sub))
        for k, v in trials.items():
            assert float(row[f"{k}_mean"]) == pytest.approx(100 * np.mean(v), abs=1e-5), (name, k)
            assert float(row[f"{k}_std"]) == pytest.approx(100 * np.std(v), abs=1e-5), (name, k)
            means[k].append(np.mean(v))
    assert rows[3]["ood_set"] == "Mean"
    for k, v in means.items():
        assert float(rows[3][f"{k}_mean"]) == pytest.approx(100 * np.mean(v), abs=1e-5)


def test_missing_sets_are_noted_or_fatal_with_strict(tmp_path, capsys):
    write_scores(tmp_path / "c", "m", "msp", {ID: np.arange(20.0), "svhn": [3.0, 30.0, 12.0, 25.0]})
    cfg = EvaluateConfig(cached=["m"], cache_dir=str(tmp_path / "c"), id_dataset=ID, ood=["svhn", "lsun"],
                         num_to_avg=2, out=str(tmp_path / "out"))
    ev = run_evaluation(cfg)
    assert [r.status for r in ev.rows] == ["ok", "missing"] and "no cached scores" in ev.rows[1].note
    table = evaluation_tables(ev)[0]
    assert table.rows[1] == ["LSUN", "—", "—", "—"] and table.rows[-1][0] == "Mean (1 of 2 sets)"
    assert any(n.startswith("LSUN skipped: no cached scores") for n in table.notes)
    rc = cli_main(main, ["--cached", "m", "--cache-dir", str(tmp_path / "c"), "--ood", "svhn", "lsun", "--strict",
               "--out", str(tmp_path / "o2")])
    assert rc == 2 and "error: no cached scores for model 'm', detector 'msp', dataset 'lsun:test'" in \
        capsys.readouterr().err


def test_cached_scores_from_other_weights_than_the_id_scores_are_not_mixed(tmp_path):
    write_scores(tmp_path / "c", "m", "msp", {ID: np.arange(10.0), "svhn": [1.0, 2.0]}, digest="old")
    write_scores(tmp_path / "c", "m", "msp", {"lsun": [3.0, 4.0]}, digest="new")
    ev = run_evaluation(EvaluateConfig(cached=["m"], cache_dir=str(tmp_path / "c"), id_dataset=ID,
                                       ood=["svhn", "lsun"], num_to_avg=1, out=str(tmp_path)))
    assert [r.status for r in ev.rows] == ["ok", "missing"]
    assert "other weights than the ID scores" in ev.rows[1].note


def test_default_suite_and_display_names(tmp_path):
    write_scores(tmp_path / "c", "m", "msp", {ID: np.arange(10.0), "cifar100": [5.5, 20.0]})
    ev = run_evaluation(EvaluateConfig(cached=["m"], cache_dir=str(tmp_path / "c"), num_to_avg=1,
                                       out=str(tmp_path)))
    assert [r.display for r in ev.rows] == ["Gaussian", "Rademacher", "Blobs", "Textures", "SVHN", "Places365",
                                           "LSUN", "CIFAR-100"]
    assert [r.status for r in ev.rows].count("ok") == 1


def test_from_results_rerenders_identically(tmp_path):
    rng = np.random.default_rng(1)
    write_scores(tmp_path / "c", "m", "msp", {ID: rng.normal(size=100), "svhn": rng.normal(1, 1, 50)})
    first = tmp_path / "first"
    assert cli_main(main, ["--cached", "m", "--cache-dir", str(tmp_path / "c"), "--ood", "svhn", "--num-to-avg", "3",
                 "--out", str(first)]) == 0
    second = tmp_path / "second"
    assert cli_main(main, ["--from-results", str(first / "results.json"), "--out", str(second)]) == 0
    assert (first / "results.md").read_text() == (second / "results.md").read_text()
    assert (first / "results.csv").read_text() == (second / "results.csv").read_text()


def test_cli_errors(tmp_path, capsys):
    assert cli_main(main, ["--out", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert cli_main(main, ["--cached", "nobody", "--cache-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no model in the score cache" in capsys.readouterr().err
    assert cli_main(main, ["--cached", "m", "--detectors", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown detector 'nope'" in capsys.readouterr().err
    assert cli_main(main, ["--cached", "m", "--ood", "svhn,size", "--out", str(tmp_path)]) == 2
    assert "not KEY=VALUE" in capsys.readouterr().err
    assert cli_main(main, ["--cached", "m", "--num-to-avg", "0", "--out", str(tmp_path)]) == 2
    assert "--num-to-avg must be >= 1" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli_main(main, ["--cached", "m", "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "--out" in capsys.readouterr().err


def test_latex_escape():
    assert latex_escape("a_b & 5% #1 ± $x$") == r"a\_b \& 5\% \#1 $\pm$ \$x\$"
    with pytest.raises(OEError):
        Evaluation.load("/nonexistent/results.json")
