"""The paper pipeline end to end, through the scripts themselves, on a data root in the real on-disk formats.

Every paper script runs once (module fixture) with tiny models and step limits passed as arguments:
``cifar{10,100}_wrn_{baseline,oe_tune,oe_scratch}.sh``, ``density_cifar10_{baseline,oe_tune,score}.sh``,
``eval_cifar10.sh`` / ``eval_cifar100.sh`` and ``figures.sh``; the tests then check what they wrote.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.md_tables import check_compare_table, md_tables, ours
from tests.md_tables import paper as paper_value
from tests.paper_data import script_env, write_paper_data_root

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow                  # about 22 Python processes, one per script step
FAST = ["--device", "cpu", "--num-workers", "0", "--no-progress", "--epochs", "1", "--limit-steps", "2"]
WRN = ["--depth", "10", "--widen-factor", "1", "--batch-size", "8", "--oe-batch-size", "16", *FAST]
PCNN = ["--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix", "2", "--batch-size", "8",
        "--oe-batch-size", "8", "--eval-images", "8", *FAST]
EVAL = ["--device", "cpu", "--num-to-avg", "2", "--batch-size", "64", "--limit", "24"]
TABLE5_ROWS = ["Gaussian", "Rademacher", "Blobs", "Textures", "SVHN", "Places365", "LSUN", "CIFAR-100"]
C100_ROWS = TABLE5_ROWS[:-1] + ["CIFAR-10"]
SCORED_SETS = ("cifar10", "svhn")
TABLES = {"FPR95 (%)": "fpr95", "AUROC (%)": "auroc", "AUPR (%)": "aupr_out"}
C10_COLUMNS = {"MSP": ("msp", "msp"), "MSP+OE": ("msp_oe", "msp"), "MSP+OE scratch": ("msp_oe_scratch", "msp"),
               "BPP": ("pcnn", "bpd"), "BPP+OE": ("pcnn_oe", "bpd")}
PAPER_KEYS = ("c10-wrn-msp-baseline", "c10-wrn-msp-oe-tune", "c10-wrn-msp-oe-scratch", "c10-pixelcnn-bpp-baseline",
              "c10-pixelcnn-bpp-oe")


def sh(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / script), *args], cwd=env["OUT"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper")
    data = base / "data"
    env = script_env(write_paper_data_root(data), DATA_ROOT=str(data), OUT=str(base / "runs"))
    (base / "runs").mkdir()
    for dataset in ("cifar10", "cifar100"):
        for mode in ("baseline", "oe_tune", "oe_scratch"):
            sh(f"{dataset}_wrn_{mode}.sh", env, *WRN)
    sh("density_cifar10_baseline.sh", env, *PCNN)
    sh("density_cifar10_oe_tune.sh", env, *PCNN)
    score_env = {**env, "SETS": " ".join(SCORED_SETS)}
    sh("density_cifar10_score.sh", score_env, "cifar10_pixelcnn_oe_tune", "--device", "cpu", "--num-workers", "0",
       "--limit", "10")
    sh("eval_cifar10.sh", env, *EVAL)
    sh("eval_cifar100.sh", env, *EVAL)
    # re-render the CIFAR-10 evaluation from its score cache alone: the same tables come out
    ev = base / "runs" / "cifar10_eval"
    shutil.copy(ev / "compare" / "compare.md", base / "runs" / "compare_before_figures.md")
    shutil.copy(ev / "results.md", base / "runs" / "results_before_figures.md")
    cols = ";".join(f"{title}={label}:{det}" for title, (label, det) in C10_COLUMNS.items())
    fig_env = {**env, "COMPARE_COLUMNS": cols, "LIKELIHOOD": "pcnn;pcnn_oe;svhn",
               "COMPARE_PAPER": ";".join(f"{t}={k}" for t, k in zip(C10_COLUMNS, PAPER_KEYS))}
    sh("figures.sh", fig_env, str(ev))
    return base / "runs"


def test_every_training_run_finished_with_its_mode_and_the_fixture_data(paper):
    data = paper.parent / "data"
    for dataset in ("cifar10", "cifar100"):
        for mode in ("baseline", "oe_tune", "oe_scratch"):
            cfg = json.loads((paper / f"{dataset}_wrn_{mode}" / "config.json").read_text())
            assert (cfg["dataset"], cfg["mode"], cfg["data_root"]) == (dataset, mode, str(data))
            rows = json.loads((paper / f"{dataset}_wrn_{mode}" / "metrics.json").read_text())
            assert len(rows) == 1 and math.isfinite(rows[0]["train_loss"])
    for mode in ("baseline", "oe_tune"):
        cfg = json.loads((paper / f"cifar10_pixelcnn_{mode}" / "config.json").read_text())
        assert (cfg["dataset"], cfg["mode"]) == ("cifar10", mode)
    oe = json.loads((paper / "cifar10_pixelcnn_oe_tune" / "config.json").read_text())
    assert oe["init"] == str(paper / "cifar10_pixelcnn_baseline") and oe["outliers"] == "tinyimages80m"
    assert oe["eval_weights"] == "trained weights (no averaging)"


def test_score_script_writes_per_image_bits_per_dim(paper):
    for name in SCORED_SETS:
        scores = np.load(paper / "scores" / "cifar10_pixelcnn_oe_tune" / f"{name}.npy")
        assert scores.shape == (10,) and np.isfinite(scores).all() and (scores > 0).all()




def test_table5_and_table1_have_every_paper_row_with_our_numbers_and_the_papers(paper):
    ev = paper / "cifar10_eval"
    md = (ev / "compare" / "compare.md").read_text()
    assert "| OOD set | MSP | MSP+OE | MSP+OE scratch | BPP | BPP+OE |" in md
    tables = check_compare_table(md, ev / "results.json", C10_COLUMNS, TABLE5_ROWS, TABLES)
    auroc = tables["AUROC (%)"][1]
    # the paper's numbers beside ours: Table 5 (BPP, BPP+OE) and the logs behind Table 1/7 (MSP columns)
    assert [paper_value(auroc["SVHN"][j]) for j in (3, 4)] == [15.8, 75.8]
    assert [paper_value(auroc["Mean"][j]) for j in (3, 4)] == [65.8, 83.7]
    assert [paper_value(auroc["Mean"][j]) for j in (0, 1, 2)] == [89.27, 97.81, 98.56]


def test_cifar100_evaluation_covers_baseline_oe_tune_and_scratch(paper):
    ev = paper / "cifar100_eval"
    md = (ev / "compare" / "compare.md").read_text()
    columns = {k: v for k, v in C10_COLUMNS.items() if k.startswith("MSP")}
    tables = check_compare_table(md, ev / "results.json", columns, C100_ROWS, TABLES)
    fpr = tables["FPR95 (%)"][1]
    assert [paper_value(fpr["Mean"][j]) for j in range(3)] == [62.66, 38.5, 32.59]
    assert not (ev / "likelihood").exists()


def test_figure2_bits_per_dim_of_cifar10_test_and_svhn_before_and_after_oe(paper):
    lik = paper / "cifar10_eval" / "likelihood"
    head, rows = md_tables((lik / "likelihood.md").read_text())["Bits per dim: CIFAR-10 test vs SVHN"]
    assert head[:3] == ["Model", "CIFAR-10 mean bpd", "SVHN mean bpd"]
    assert list(rows) == ["Baseline (pcnn)", "OE (pcnn_oe)"]
    saved = {r["model"]: r for r in json.loads((lik / "likelihood.json").read_text())["rows"]}
    for name, cells in rows.items():
        assert ours(cells[0]) == float(f"{saved[name]['id_mean_bpd']:.3f}") and ours(cells[0]) > 0
        assert ours(cells[1]) == float(f"{saved[name]['ood_mean_bpd']:.3f}") and ours(cells[1]) > 0
    assert [paper_value(rows[m][1]) for m in rows] == [2.98, 3.43]           # the paper's SVHN 2.98 -> 3.43
    assert (lik / "bpd_histogram.png").stat().st_size > 1000


def test_every_figure_is_drawn(paper):
    figures = paper / "cifar10_eval" / "figures"
    expected = {"auroc_bars.png"} | {f"{kind}_{label}_{det}.png" for kind in ("hist", "roc")
                                     for label, det in C10_COLUMNS.values()}
    have = {p.name for p in figures.glob("*.png")}
    assert expected <= have, expected - have
    assert all((figures / p).stat().st_size > 1000 for p in expected)


def test_figures_script_rerenders_the_same_tables_from_the_score_cache(paper):
    ev = paper / "cifar10_eval"
    assert (ev / "compare" / "compare.md").read_text() == (paper / "compare_before_figures.md").read_text()
    assert (ev / "results.md").read_text() == (paper / "results_before_figures.md").read_text()
