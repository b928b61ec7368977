"""``analysis.compare`` and the paper's numbers."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analysis.compare import main
from analysis.evaluate import main as evaluate_main
from analysis.paper_numbers import PAPER_BPD, PAPER_COLUMNS, paper_column
from oe_core.errors import OEError, cli_main
from tests.test_analysis_tables import write_scores


@pytest.mark.parametrize("key", sorted(PAPER_COLUMNS))
def test_paper_means_agree_with_their_rows(key):
    """Each published mean is the mean of its eight rows up to rounding (catches transcription slips)."""
    col = PAPER_COLUMNS[key]
    assert len(col.values) == 8
    decimals = 1 if "pixelcnn" in key else 2
    tol = 10.0 ** -decimals  # half a unit of rounding on the rows' mean and on the published mean
    avg = np.mean(list(col.values.values()), axis=0)
    assert np.all(np.abs(avg - np.array(col.mean)) <= tol), (avg, col.mean)
    assert col.value("svhn", "auroc") == col.values["svhn"][1] / 100


def test_paper_lookup():
    assert paper_column("c10-pixelcnn-bpp-baseline").value("svhn", "auroc") == pytest.approx(0.158)
    assert paper_column("c10-wrn-msp-oe-tune").mean_value("fpr95") == pytest.approx(0.095)
    assert paper_column("c100-wrn-msp-baseline").value("cifar100", "auroc") is None
    assert PAPER_BPD["baseline"]["svhn"] < PAPER_BPD["baseline"]["cifar10"] < PAPER_BPD["oe"]["svhn"]
    with pytest.raises(OEError, match="unknown paper column"):
        paper_column("c10-resnet")


def _results(tmp_path, ood=("svhn", "textures")) -> str:
    write_scores(tmp_path / "c", "clf", "msp", {"cifar10": np.arange(10.0), "svhn": [9.5, 4.5],
                                                "textures": [0.5, 1.5]})
    write_scores(tmp_path / "c", "pcnn", "bpd", {"cifar10": np.arange(10.0), "svhn": [-1.0, 2.5]},
                 kind="density")
    assert cli_main(evaluate_main, ["--cached", "*", "--cache-dir", str(tmp_path / "c"), "--ood", *ood,
                                    "--num-to-avg", "1", "--out", str(tmp_path / "ev")]) == 0
    return str(tmp_path / "ev" / "results.json")


def test_side_by_side_with_paper_numbers(tmp_path, capsys):
    """AUROC: clf SVHN {9.5, 4.5} vs 0..9 -> 75%; Textures {0.5, 1.5} -> (1 + 2)/20 = 15%; pcnn SVHN
    {-1, 2.5} -> (0 + 3)/20 = 15%, not evaluated on Textures."""
    results = _results(tmp_path)
    out = tmp_path / "cmp"
    assert cli_main(main, ["--results", results, "--columns", "MSP=clf:msp", "Likelihood=pcnn:bpd",
                           "--paper", "MSP=c10-wrn-msp-baseline", "Likelihood=c10-pixelcnn-bpp-baseline",
                           "--metrics", "auroc", "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "| OOD set | MSP | Likelihood |" in md
    assert "| SVHN | 75.00 (91.83) | 15.00 (15.80) |" in md
    assert "| Textures | 15.00 (88.37) | — (69.40) |" in md
    # means over the evaluated sets; the paper's over the same sets (†), not its published mean
    assert f"| **Mean** | **45.00 ({(91.83 + 88.37) / 2:.2f})†** | **15.00 (15.80)†** |" in md
    assert "Likelihood: not evaluated on Textures" in md
    rows = list(csv.DictReader(open(out / "compare.csv")))
    svhn = next(r for r in rows if r["ood_set"] == "SVHN" and r["column"] == "MSP")
    assert float(svhn["mean"]) == pytest.approx(75.0) and float(svhn["paper"]) == pytest.approx(91.83)
    assert json.loads((out / "compare.json").read_text())["columns"] == ["MSP", "Likelihood"]
    assert r"\dagger" in (out / "compare.tex").read_text()


def test_default_columns_and_published_mean_when_all_sets_match(tmp_path):
    sets = ("gaussian", "rademacher", "blobs", "textures", "svhn", "places365", "lsun", "cifar100")
    write_scores(tmp_path / "c", "clf", "msp", {"cifar10": np.arange(10.0), **{s: [9.5, 4.5] for s in sets}})
    assert cli_main(evaluate_main, ["--cached", "clf", "--cache-dir", str(tmp_path / "c"), "--num-to-avg", "1",
                                    "--out", str(tmp_path / "ev")]) == 0
    out = tmp_path / "cmp"
    assert cli_main(main, ["--results", str(tmp_path / "ev" / "results.json"), "--paper",
                           "clf / msp=c10-wrn-msp-baseline", "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "| **Mean** | **75.00 (89.27)** |" in md and "†" not in md.split("### AUROC")[1].split("###")[0]
    assert md.count("### ") == 3  # FPR95, AUROC, AUPR


def test_errors(tmp_path, capsys):
    results = _results(tmp_path)
    for args, msg in [(["--columns", "MSP=clf"], "expected TITLE=LABEL:DETECTOR"),
                      (["--columns", "MSP=nobody:msp"], "no results for nobody:msp"),
                      (["--columns", "MSP=clf:msp", "--paper", "Other=c10-wrn-msp-baseline"], "TITLE one of"),
                      (["--columns", "MSP=clf:msp", "--paper", "MSP=c100-wrn-msp-baseline"],
                       "in-distribution cifar100"),
                      (["--metrics", "auroc", "fpr99"], "'fpr99' is not in the results")]:
        assert cli_main(main, ["--results", results, "--out", str(tmp_path / "x"), *args]) == 2
        assert msg in capsys.readouterr().err
    assert cli_main(main, ["--results", results, results, "--out", str(tmp_path / "x")]) == 2
    assert "more than one results file" in capsys.readouterr().err
    assert cli_main(main, ["--list-paper"]) == 0
    assert "c10-pixelcnn-bpp-oe" in capsys.readouterr().out
