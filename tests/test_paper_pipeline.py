"""The paper pipeline end to end, through the scripts themselves, on a data root in the real on-disk formats.

Every paper script runs once (module fixture) with tiny models and step limits passed as arguments:
``cifar{10,100}_wrn_{baseline,oe_tune,oe_scratch}.sh``, ``density_cifar10_{baseline,oe_tune,score}.sh``,
``eval_cifar10.sh`` / ``eval_cifar100.sh`` and ``figures.sh``; the tests then check what they wrote.
"""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.paper_data import script_env, write_paper_data_root

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--num-workers", "0", "--no-progress", "--epochs", "1", "--limit-steps", "2"]
WRN = ["--depth", "10", "--widen-factor", "1", "--batch-size", "8", "--oe-batch-size", "16", *FAST]
PCNN = ["--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix", "2", "--batch-size", "8",
        "--oe-batch-size", "8", "--eval-images", "8", *FAST]
EVAL = ["--device", "cpu", "--num-to-avg", "2", "--batch-size", "64", "--limit", "24"]
TABLE5_ROWS = ["Gaussian", "Rademacher", "Blobs", "Textures", "SVHN", "Places365", "LSUN", "CIFAR-100"]
C100_ROWS = TABLE5_ROWS[:-1] + ["CIFAR-10"]
SCORED_SETS = ("cifar10", "svhn", "lsun")


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
    # re-render the CIFAR-10 evaluation from its score cache alone
    fig_env = {**env, "COMPARE_COLUMNS": "BPP=pcnn:bpd;BPP+OE=pcnn_oe:bpd",
               "COMPARE_PAPER": "BPP=c10-pixelcnn-bpp-baseline;BPP+OE=c10-pixelcnn-bpp-oe",
               "LIKELIHOOD": "pcnn;pcnn_oe;svhn"}
    sh("figures.sh", fig_env, str(base / "runs" / "cifar10_eval"))
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


def table_rows(md: str, first_col: list[str]) -> dict[str, list[str]]:
    """``| name | a | b |`` lines of a markdown table -> {name: [a, b]} for the names asked for."""
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in first_col:
            rows[cells[0]] = cells[1:]
    return rows


def finite_numbers(cells: list[str]) -> list[float]:
    out = []
    for cell in cells:
        for token in cell.replace("->", " ").replace("/", " ").replace("±", " ").split():
            try:
                out.append(float(token))
            except ValueError:
                pass
    assert out and all(math.isfinite(v) for v in out), cells
    return out


def test_table5_has_every_paper_row_for_bpp_before_and_after_oe(paper):
    results = json.loads((paper / "cifar10_eval" / "results.json").read_text())
    md = (paper / "cifar10_eval" / "compare" / "compare.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("|"))
    for column in ("MSP", "MSP+OE", "MSP+OE scratch", "BPP", "BPP+OE"):
        assert f"| {column}" in header or f"{column} |" in header, header
    rows = table_rows(md, TABLE5_ROWS + ["Mean"])
    assert list(rows) == TABLE5_ROWS + ["Mean"] or set(rows) == set(TABLE5_ROWS + ["Mean"])
    for name, cells in rows.items():
        finite_numbers(cells)
    assert results and "results" in results or results


def test_figure2_bits_per_dim_study_and_figures_exist(paper):
    lik = paper / "cifar10_eval" / "likelihood"
    files = {p.name for p in lik.iterdir()}
    assert any(f.endswith(".md") for f in files) and any(f.endswith(".png") for f in files), files
    md = next(p for p in lik.iterdir() if p.suffix == ".md").read_text()
    assert "SVHN" in md and "CIFAR-10" in md
    figures = paper / "cifar10_eval" / "figures"
    pngs = sorted(p.name for p in figures.glob("*.png"))
    assert pngs and all((figures / p).stat().st_size > 1000 for p in pngs)


def test_cifar100_evaluation_covers_baseline_oe_tune_and_scratch(paper):
    md = (paper / "cifar100_eval" / "compare" / "compare.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("|"))
    for column in ("MSP", "MSP+OE", "MSP+OE scratch"):
        assert column in header
    assert "BPP" not in header
    rows = table_rows(md, C100_ROWS + ["Mean"])
    assert set(rows) == set(C100_ROWS + ["Mean"])
    for cells in rows.values():
        finite_numbers(cells)
