"""The AUROC-over-training trajectory: --track-ood scoring in the density trainer, analysis.trajectory."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from analysis import trajectory
from density_oe.train import DensityTask, main
from density_oe.config import DensityConfig
from density_oe.units import bits_per_dim
from density_oe.weights import load_density_model
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import cli_main

ARGS = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix",
        "2", "--num-workers", "0", "--no-progress", "--device", "cpu", "--eval-images", "40", "--test-batch-size",
        "16", "--batch-size", "8", "--epochs", "3", "--limit-steps", "6", "--lr", "3e-3", "--ema-decay", "0.8"]
TRACK = ["--track-ood", "mini-svhn", "mini-id:val", "--track-images", "24"]


def rows(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in json.loads((out / "metrics.json").read_text())]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    plain, tracked = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("tracked")
    assert main(ARGS + ["--out", str(plain)]) == 0
    assert main(ARGS + TRACK + ["--out", str(tracked)]) == 0
    return plain, tracked


def bpd(model, images) -> np.ndarray:
    x = to_unit_range(torch.stack(images))
    with torch.no_grad():
        return bits_per_dim(model.log_prob(x), x[0].numel()).double().numpy()


def test_tracking_scores_every_epoch_and_changes_no_training_number(runs):
    plain, tracked = runs
    a, b = rows(plain), rows(tracked)
    assert [r["epoch"] for r in b] == [1, 2, 3] and [r["track_step"] for r in b] == [6, 12, 18]
    for ra, rb in zip(a, b):   # same training and the same test bits/dim, tracked or not
        assert {k: v for k, v in rb.items() if not k.startswith("track_")} == ra
    assert all(0.0 <= r["track_mini-svhn_auroc"] <= 1.0 for r in b)


def test_tracked_auroc_is_the_final_weights_on_the_fixed_images(runs):
    _, tracked = runs
    model, _ = load_density_model(tracked)                              # the EMA weights: what evaluate scores
    test = get_dataset("mini-id", "test", size=8)
    digits = get_dataset("mini-svhn", size=8)
    s_in = bpd(model, [test[i][0] for i in range(40)])
    s_out = bpd(model, [digits[i][0] for i in range(24)])
    last = rows(tracked)[-1]
    assert last["track_mini-svhn_bpd"] == pytest.approx(s_out.mean(), rel=1e-6)
    val = get_dataset("mini-id", "val", size=8)                         # NAME:SPLIT tracks that split
    assert last["track_mini-id:val_bpd"] == pytest.approx(bpd(model, [val[i][0] for i in range(24)]).mean(), rel=1e-6)
    assert last["track_mini-svhn_auroc"] == pytest.approx(
        roc_auc_score(np.r_[np.zeros(40), np.ones(24)], np.r_[s_in, s_out]), abs=1e-9)   # OOD positive


def test_evaluation_draws_are_fixed_and_leave_training_random_streams_alone(tmp_path):
    cfg = DensityConfig(out=str(tmp_path), track_ood=["mini-svhn"], seed=3)
    task = DensityTask(cfg)
    task.track_loaders = {"mini-svhn": None}
    ctx = type("Ctx", (), {"device": torch.device("cpu")})()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with task._fixed_draws(ctx):
        first = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(7)                                                       # training moves on
    with task._fixed_draws(ctx):
        assert torch.equal(torch.rand(4), first)                        # the same draws at every evaluation


def test_trajectory_table_and_figure(runs, tmp_path):
    _, tracked = runs
    out = tmp_path / "t"
    assert trajectory.main(["--runs", f"PixelCNN++={tracked}", "--ood", "mini-svhn", "--out", str(out)]) == 0
    table = (out / "trajectory.md").read_text().splitlines()
    last = rows(tracked)[-1]
    assert table[0].startswith("| model | epoch | step | test bits/dim | mini-svhn bits/dim |")
    assert table[-1] == (f"| PixelCNN++ | 3 | 18 | {last['test_bpd']:.3f} | {last['track_mini-svhn_bpd']:.3f} | "
                         f"{100 * last['track_mini-svhn_auroc']:.1f} |")
    assert (out / "trajectory.png").stat().st_size > 5000 and (out / "trajectory.pdf").exists()


def test_untracked_run_and_bad_options_are_one_clear_error(runs, tmp_path, capsys):
    plain, _ = runs
    assert cli_main(trajectory.main, ["--runs", f"x={plain}", "--out", str(tmp_path / "t")]) != 0
    assert "has no 'track_mini-svhn_auroc': train the run with --track-ood mini-svhn" in capsys.readouterr().err
    assert cli_main(main, ARGS + ["--track-images", "0", "--out", str(tmp_path / "r")]) == 2
    assert "--track-images must be positive" in capsys.readouterr().err
