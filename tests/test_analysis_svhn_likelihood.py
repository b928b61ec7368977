"""The CIFAR-10 vs SVHN likelihood study (generic in the set names) from cached bits-per-dim scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from analysis.evaluate import main as evaluate_main
from analysis.svhn_likelihood import LikelihoodConfig, likelihood_row, main, run_study
from oe_core.errors import OEError, cli_main
from tests.test_analysis_tables import write_scores


def test_row_hand_worked():
    """ID bpd 1..5 (median 3); OOD {2.5, 3.5, 1}: two of three below the median; AUROC of bpd
    = P(ood > id) + ties/2: 2.5 beats 1, 2; 3.5 beats 1, 2, 3; 1 ties with 1 -> (2 + 3 + 0.5) / 15."""
    row = likelihood_row("m", [1.0, 2.0, 3.0, 4.0, 5.0], [2.5, 3.5, 1.0], {"c": 3.0, "s": 2.9}, "c", "s")
    assert row.id_mean_bpd == 3.0 and row.ood_mean_bpd == pytest.approx(7 / 3)
    assert row.id_median_bpd == 3.0 and row.ood_more_likely_than_median_id == pytest.approx(2 / 3)
    assert row.auroc_bpd == pytest.approx(roc_auc_score([0] * 5 + [1] * 3, [1, 2, 3, 4, 5, 2.5, 3.5, 1]))
    assert row.auroc_bpd == pytest.approx(5.5 / 15)
    assert (row.paper_id_mean_bpd, row.paper_ood_mean_bpd) == (3.0, 2.9)
    with pytest.raises(OEError, match="OOD bpd"):
        likelihood_row("m", [1.0], [])


def _evaluated(tmp_path, id_name: str, ood_name: str) -> str:
    rng = np.random.default_rng(0)
    write_scores(tmp_path / "c", "base", "bpd", {id_name: rng.normal(3.06, .1, 200),
                                                 ood_name: rng.normal(2.98, .1, 100)}, kind="density")
    write_scores(tmp_path / "c", "oe", "bpd", {id_name: rng.normal(3.08, .1, 200),
                                               ood_name: rng.normal(3.43, .1, 100)}, kind="density")
    assert cli_main(evaluate_main, ["--cached", "*", "--cache-dir", str(tmp_path / "c"), "--id-dataset", id_name,
                                    "--ood", ood_name, "--num-to-avg", "1", "--out", str(tmp_path / "ev")]) == 0
    return str(tmp_path / "ev" / "results.json")


def test_study_on_cifar_and_svhn_shows_the_paper_numbers(tmp_path):
    results = _evaluated(tmp_path, "cifar10", "svhn")
    rows, table, paths = run_study(LikelihoodConfig(results=results, baseline="base", oe="oe"))
    base, oe = rows
    assert base.ood_mean_bpd < base.id_mean_bpd and base.ood_more_likely_than_median_id > 0.5
    assert base.auroc_bpd < 0.5 < oe.auroc_bpd and oe.ood_more_likely_than_median_id < 0.05
    assert (base.paper_id_mean_bpd, base.paper_ood_mean_bpd, oe.paper_ood_mean_bpd) == (3.06, 2.98, 3.43)
    md = paths["md"].read_text()
    assert "| Model | CIFAR-10 mean bpd | SVHN mean bpd |" in md and f"{base.id_mean_bpd:.3f} (3.06)" in md
    assert {p.suffix for p in paths.values()} == {".md", ".tex", ".csv", ".json", ".png", ".pdf"}
    doc = json.loads(paths["json"].read_text())
    assert doc["rows"][1]["auroc_bpd"] == oe.auroc_bpd


def test_study_is_generic_in_the_set_names(tmp_path, capsys):
    results = _evaluated(tmp_path, "mini-id", "mini-svhn")
    out = tmp_path / "lik"
    assert cli_main(main, ["--results", results, "--baseline", "base", "--oe", "oe", "--ood", "mini-svhn",
                           "--out", str(out)]) == 0
    md = (out / "likelihood.md").read_text()
    assert "mini-svhn mean bpd" in md and "(3.06)" not in md  # no paper numbers for other sets
    assert cli_main(main, ["--results", results, "--baseline", "base", "--oe", "oe", "--ood", "svhn",
                           "--out", str(out)]) == 2
    assert "no bpd scores for OOD set 'svhn'" in capsys.readouterr().err
    assert cli_main(main, ["--results", results, "--baseline", "base", "--out", str(out)]) == 2
    assert "--oe" in capsys.readouterr().err
