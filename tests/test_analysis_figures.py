"""Figures: the expected panels, labels and legends; PNG + PDF files; rendering from the score cache."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from analysis.score_cache import ScoreCache, ScoreKey
from analysis.datasets import DatasetSpec
from analysis.figures import (auroc_bars, bpd_histograms, read_metrics_csv, roc_figure, save_figure,
                              score_histograms, training_curves)
from analysis.figures.__main__ import main as figures_main
from analysis.evaluate import main as evaluate_main
from oe_core.errors import OEError, cli_main
from tests.test_analysis_tables import write_scores

RNG = np.random.default_rng(0)
ID_SCORES = RNG.normal(size=300)
OOD = {"SVHN": RNG.normal(1, 1, 100), "Textures": RNG.normal(0.5, 1, 80), "Gaussian": RNG.normal(3, 1, 60),
       "LSUN": RNG.normal(0.1, 1, 50)}


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_title()]


def test_score_histograms_one_labelled_panel_per_set():
    fig = score_histograms(ID_SCORES, OOD, id_name="CIFAR-10", units="negative max softmax probability",
                           title="clf / msp")
    axes = _panels(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == list(OOD)
    assert all(ax.get_xlabel().replace("\n", " ") == "negative max softmax probability" for ax in axes)
    assert all(ax.get_ylabel() == "density" for ax in axes)
    for ax in axes:  # a filled ID histogram of 40 bars and one OOD outline
        assert [type(p).__name__ for p in ax.patches] == ["Rectangle"] * 40 + ["Polygon"]
    assert "AUROC" in axes[0].get_title() and fig.legends and "clf / msp" in fig.get_suptitle()


def test_roc_figure_curves_and_chance_line():
    fig = roc_figure(ID_SCORES, OOD, title="clf / msp")
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == len(OOD) + 1 and labels[-1] == "chance"
    assert all(lab.startswith(name) and "AUROC" in lab for lab, name in zip(labels, OOD))
    x, y = ax.get_lines()[0].get_data()
    assert x[0] == 0 and y[0] == 0 and x[-1] == 100 and y[-1] == 100 and np.all(np.diff(x) >= 0)
    assert "(%)" in ax.get_xlabel() and "(%)" in ax.get_ylabel() and ax.get_legend() is not None


def test_auroc_bars_groups_and_gaps():
    series = {"likelihood": {"SVHN": (0.16, 0.01), "Textures": (0.7, 0.02)},
              "MSP": {"SVHN": (0.92, 0.005), "Textures": (0.88, 0.01), "LSUN": (0.89, 0.01)}}
    fig = auroc_bars(series, ["SVHN", "Textures", "LSUN"])
    (ax,) = fig.axes
    bars = [c for c in ax.containers if type(c).__name__ == "BarContainer"]
    assert len(bars) == 2
    heights = [b.get_height() for b in bars[0]]
    assert heights[:2] == pytest.approx([16.0, 70.0]) and np.isnan(heights[2])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SVHN", "Textures", "LSUN"]
    assert ax.get_ylabel() == "AUROC (%)" and ax.get_ylim() == (0, 100)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["chance (50%)", "likelihood", "MSP"]


def test_bpd_histograms_panels_share_range_and_show_means():
    panels = {"Baseline": {"CIFAR-10 test": RNG.normal(3.06, .2, 200), "SVHN": RNG.normal(2.98, .2, 100)},
              "OE": {"CIFAR-10 test": RNG.normal(3.08, .2, 200), "SVHN": RNG.normal(3.43, .2, 100)}}
    fig = bpd_histograms(panels)
    axes = _panels(fig)
    assert [ax.get_title() for ax in axes] == ["Baseline", "OE"]
    assert axes[0].get_xlim() == axes[1].get_xlim()
    for ax, sets in zip(axes, panels.values()):
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts == [f"{n} (mean {np.mean(v):.2f})" for n, v in sets.items()]
        assert ax.get_xlabel() == "bits per dimension" and len(ax.get_lines()) == 2  # the mean lines


def test_training_curves_from_metrics_csv(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.csv").write_text("epoch,train_loss,test_error,note\n0,2.0,0.5,x\n1,1.0,0.3,y\n")
    (tmp_path / "b.csv").write_text("epoch,train_loss,test_bpd\n0,3.0,5.0\n")
    runs = {"a": read_metrics_csv(tmp_path / "a"), "b": read_metrics_csv(tmp_path / "b.csv")}
    assert "note" not in runs["a"] and runs["a"]["train_loss"].tolist() == [2.0, 1.0]
    fig = training_curves(runs)
    assert [ax.get_title() for ax in _panels(fig)] == ["train_loss", "test_error", "test_bpd"]
    assert all(ax.get_xlabel() == "epoch" for ax in _panels(fig))
    assert len(_panels(fig)[0].get_lines()) == 2
    with pytest.raises(OEError, match="no training history"):
        read_metrics_csv(tmp_path / "nothing")
    (tmp_path / "bad.csv").write_text("step,loss\n1,2\n")
    with pytest.raises(OEError, match="no 'epoch' column"):
        read_metrics_csv(tmp_path / "bad.csv")


def test_save_figure_writes_png_and_pdf(tmp_path):
    paths = save_figure(roc_figure(ID_SCORES, OOD, title="t"), tmp_path / "sub" / "roc")
    assert [p.name for p in paths] == ["roc.png", "roc.pdf"]
    img = imread(paths[0])
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
    assert paths[1].read_bytes().startswith(b"%PDF")


def _evaluated(tmp_path) -> Path:
    sets = {"cifar10": ID_SCORES, "svhn": OOD["SVHN"], "textures": OOD["Textures"]}
    write_scores(tmp_path / "c", "clf", "msp", sets)
    write_scores(tmp_path / "c", "pcnn", "bpd", {k: v + 3 for k, v in sets.items()}, kind="density")
    assert cli_main(evaluate_main, ["--cached", "*", "--cache-dir", str(tmp_path / "c"), "--ood", "svhn",
                                    "textures", "lsun", "--num-to-avg", "2", "--out", str(tmp_path / "ev")]) == 0
    return tmp_path / "ev" / "results.json"


def test_cli_renders_every_figure_from_the_cache(tmp_path, capsys):
    results = _evaluated(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    assert cli_main(figures_main, ["--results", str(results), "--bars", "likelihood=pcnn:bpd", "MSP=clf:msp",
                                   "--runs", f"clf={tmp_path / 'run'}", "--formats", "png", "--dpi", "40"]) == 0
    out = results.parent / "figures"
    stems = {"hist_clf_msp", "roc_clf_msp", "hist_pcnn_bpd", "roc_pcnn_bpd", "auroc_bars", "training_curves"}
    assert {p.name for p in out.iterdir()} == {f"{s}.png" for s in stems} | {"figures.md", "config.json"}
    assert all(imread(out / f"{s}.png").shape[1] > 100 for s in stems)
    assert "![AUROC per OOD set" in (out / "figures.md").read_text()


def test_cli_refuses_scores_recomputed_since_the_results(tmp_path, capsys):
    results = _evaluated(tmp_path)
    ScoreCache(tmp_path / "c").save(ScoreKey("clf", "msp", DatasetSpec.parse("svhn")), OOD["SVHN"], "newer")
    assert cli_main(figures_main, ["--results", str(results)]) == 2
    assert "no longer match" in capsys.readouterr().err


@pytest.mark.slow
def test_figures_script_regenerates_everything(tmp_path):
    results = _evaluated(tmp_path)
    root = Path(__file__).resolve().parents[1]
    env = {"OE_PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "LIKELIHOOD": "pcnn;pcnn;svhn", "COMPARE_COLUMNS": "MSP=clf:msp;BPP=pcnn:bpd"}
    r = subprocess.run(["bash", str(root / "scripts" / "figures.sh"), str(results.parent)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ev = results.parent
    for f in ("results.md", "figures/auroc_bars.pdf", "compare/compare.md", "likelihood/bpd_histogram.png",
              "likelihood/likelihood.tex"):
        assert (ev / f).is_file(), f
    assert "| OOD set | MSP | BPP |" in (ev / "compare" / "compare.md").read_text()
