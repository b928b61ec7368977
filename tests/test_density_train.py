"""The density trainer (baseline and OE fine-tuning), the scoring and sampling CLIs, on tiny configs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from density_oe import sample, score
from density_oe.config import DensityConfig
from density_oe.ema import EMA
from density_oe.train import DensityTask, main
from density_oe.units import bits_per_dim
from density_oe.weights import load_density_model
from oe_core.cli_config import parse_config
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import Preempted, cli_main
from oe_core.run import Engine, load_checkpoint
from tests.faults import preempting

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix", "2"]
COMMON = ["--dataset", "mini-id", "--image-size", "8", *MODEL, "--num-workers", "0", "--no-progress",
          "--device", "cpu", "--eval-images", "48", "--test-batch-size", "48"]
BASELINE = COMMON + ["--batch-size", "8", "--epochs", "3", "--limit-steps", "12", "--lr", "3e-3",
                     "--ema-decay", "0.8"]


def history(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in json.loads((out / "metrics.json").read_text())]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    assert main(BASELINE + ["--out", str(out)]) == 0
    return out


def oe_args(init: Path) -> list[str]:
    return COMMON + ["--mode", "oe_tune", "--init", str(init), "--outliers", "mini-outliers", "--batch-size", "3",
                     "--oe-batch-size", "5", "--epochs", "2", "--limit-steps", "4"]


def test_a_tiny_training_run_lowers_bits_per_dim(baseline):
    rows = history(baseline)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_bpd"] < rows[0]["train_bpd"] - 0.3
    assert rows[-1]["test_bpd"] < rows[0]["test_bpd"] - 0.3
    assert rows[1]["lr"] == pytest.approx(3e-3 * 0.999995 ** 24)          # decayed every step
    cfg = json.loads((baseline / "config.json").read_text())
    assert cfg["mode"] == "baseline" and cfg["epochs"] == 3 and cfg["nr_filters"] == 8
    state = load_checkpoint(baseline, expect_kind="density")
    assert state["eval_model"].keys() == state["model"].keys()
    assert any(not torch.equal(state["eval_model"][k], state["model"][k]) for k in state["model"])


def test_test_bits_per_dim_is_the_ema_model_on_every_test_image(baseline):
    model, _ = load_density_model(baseline)                          # the EMA weights
    test = get_dataset("mini-id", "test", size=8)
    x = to_unit_range(torch.stack([test[i][0] for i in range(48)]))
    with torch.no_grad():
        expected = float(bits_per_dim(model.log_prob(x), x[0].numel()).double().mean())
    assert history(baseline)[-1]["test_bpd"] == pytest.approx(expected, rel=1e-6)


def test_ema_update_is_polyak_averaging():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.9)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    torch.testing.assert_close(ema.model.weight, 0.9 * before + 0.1 * net.weight.detach())


def test_zero_debiased_ema_holds_none_of_the_start_weights():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.fill_(1e6)                                        # the pre-OE weights, easy to see
    plain, debiased = EMA(net, decay=0.9), EMA(net, decay=0.9, debias=True)
    g = torch.Generator().manual_seed(0)
    steps = [torch.randn(2, 3, generator=g) for _ in range(5)]
    for w in steps:
        with torch.no_grad():
            net.weight.copy_(w)
        plain.update(net)
        debiased.update(net)
    coef = [0.1 * 0.9 ** (4 - s) for s in range(5)]
    torch.testing.assert_close(debiased.model.weight, sum(c * w for c, w in zip(coef, steps)) / (1 - 0.9 ** 5))
    torch.testing.assert_close(plain.model.weight, 0.9 ** 5 * 1e6 + sum(c * w for c, w in zip(coef, steps)))
    copy = EMA(net, decay=0.0)
    copy.update(net)
    assert torch.equal(copy.model.weight, net.weight)


def pre_oe_fraction(init: Path, run: Path) -> float:
    """How far the weights that scoring loads are back toward the pre-OE model: ||w_scored - w_tuned|| /
    ||w_init - w_tuned|| over every parameter (0: the fine-tuned weights, 1: the pre-OE ones)."""
    scored = load_density_model(run)[0].state_dict()                 # what score.py / sample.py / analysis load
    tuned = load_checkpoint(run, expect_kind="density")["model"]     # the weights the optimizer produced
    start = load_density_model(init)[0].state_dict()
    num = sum(float((scored[k].double() - tuned[k].double()).pow(2).sum()) for k in tuned)
    den = sum(float((start[k].double() - tuned[k].double()).pow(2).sum()) for k in tuned)
    assert den > 0
    return (num / den) ** 0.5


@pytest.mark.parametrize("steps", ["1", "4"])
def test_oe_tune_with_defaults_scores_the_fine_tuned_weights(baseline, tmp_path, steps):
    out = tmp_path / "oe"
    assert main(oe_args(baseline)[:-1] + [steps, "--out", str(out)]) == 0
    assert pre_oe_fraction(baseline, out) <= 0.10
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["ema_decay"] == 0.0 and cfg["eval_weights"] == "trained weights (no averaging)"
    state = load_checkpoint(out, expect_kind="density")
    assert state["eval_model"] is None and state["task"]["ema"] is None   # no second copy of the weights kept
    assert json.loads((baseline / "config.json").read_text())["eval_weights"].startswith("EMA 0.8 started")
    model, _ = load_density_model(out)                               # test_bpd is of those weights too
    test = get_dataset("mini-id", "test", size=8)
    x = to_unit_range(torch.stack([test[i][0] for i in range(48)]))
    with torch.no_grad():
        expected = float(bits_per_dim(model.log_prob(x), x[0].numel()).double().mean())
    assert history(out)[-1]["test_bpd"] == pytest.approx(expected, rel=1e-6)


def test_an_explicit_ema_in_oe_tune_is_zero_debiased(baseline, tmp_path):
    cfg = parse_config(DensityConfig, oe_args(baseline) + ["--ema-decay", "0.9", "--out", str(tmp_path)])
    assert cfg.eval_weights == "zero-debiased EMA 0.9 of the fine-tuning steps"
    task = DensityTask(cfg)
    task.device = torch.device("cpu")
    task.build_optimizer(torch.nn.Linear(2, 2))
    assert task.ema.debias and task.ema.decay == 0.9
    task = DensityTask(parse_config(DensityConfig, oe_args(baseline) + ["--out", str(tmp_path)]))
    task.device = torch.device("cpu")
    task.build_optimizer(torch.nn.Linear(2, 2))
    assert task.ema is None                                             # decay 0: no averaged copy to update
    cfg = parse_config(DensityConfig, BASELINE + ["--out", str(tmp_path)])
    task = DensityTask(cfg)
    task.device = torch.device("cpu")
    task.build_optimizer(torch.nn.Linear(2, 2))
    assert not task.ema.debias and task.ema.decay == 0.8                # the TF average for the baseline


class RecordingTask(DensityTask):
    """Records the batch size of every forward pass of the training model."""

    def build_model(self):
        model = super().build_model()
        self.seen: list[int] = []
        model.register_forward_pre_hook(lambda m, inp: self.seen.append(inp[0].shape[0]))
        return model


def test_oe_step_takes_in_and_outlier_batches_of_different_sizes(baseline, tmp_path):
    cfg = parse_config(DensityConfig, oe_args(baseline) + ["--out", str(tmp_path), "--eval-images", "6",
                                                         "--test-batch-size", "6"])
    task = RecordingTask(cfg)
    row = Engine(task).run()
    training = [n for n in task.seen if n != 6]                      # eval passes use the test batch of 6
    assert training == [3 + 5] * 8
    assert row["outlier_bpd"] > 0 and row["train_loss"] >= row["train_bpd"]


PreemptedAt = preempting(DensityTask)


@pytest.mark.parametrize("mode", ["baseline", "oe_tune"])
def test_resumed_run_equals_uninterrupted_run(baseline, tmp_path, mode):
    args = (COMMON + ["--batch-size", "4", "--epochs", "2", "--limit-steps", "3"] if mode == "baseline"
            else oe_args(baseline))
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    cfg = parse_config(DensityConfig, args + ["--out", str(tmp_path / "resumed")])
    with pytest.raises(Preempted):
        Engine(PreemptedAt(cfg, at=4)).run()                         # in the middle of epoch 2
    assert load_checkpoint(tmp_path / "resumed")["position"]["step"] in (1, 2)
    assert main(args + ["--out", str(tmp_path / "resumed")]) == 0
    got = load_checkpoint(tmp_path / "resumed", expect_kind="density")
    expected = load_checkpoint(tmp_path / "straight", expect_kind="density")
    assert (expected["eval_model"] is None) == (mode == "oe_tune")       # decay 0: the model is what is scored
    for part in ("model", "eval_model") if mode == "baseline" else ("model",):
        for k in expected[part]:
            assert torch.equal(got[part][k], expected[part][k]), (part, k)
    assert history(tmp_path / "resumed") == history(tmp_path / "straight")


def test_bad_configs_are_one_clear_error(baseline, tmp_path, capsys):
    assert cli_main(main, COMMON + ["--mode", "oe_tune", "--out", str(tmp_path)]) == 2
    assert "--mode oe_tune needs --init" in capsys.readouterr().err
    assert cli_main(main, oe_args(baseline)[:-2] + ["--nr-filters", "16", "--limit-steps", "1",
                                                    "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"--init {str(baseline)!r} holds a PixelCNNpp with" in err and "nr_filters=8" in err
    assert "nr_filters=16" in err and "--nr-filters" in err
    assert cli_main(main, COMMON + ["--image-size", "6", "--out", str(tmp_path / "y")]) == 2
    assert "--image-size must be 0 or a multiple of 4" in capsys.readouterr().err


def test_score_cli_writes_per_image_bits_per_dim(baseline, tmp_path):
    for suffix in (".npy", ".csv"):
        out = tmp_path / f"svhn{suffix}"
        assert cli_main(score.main, ["--ckpt", str(baseline), "--dataset", "mini-svhn", "--image-size", "8",
                                     "--limit", "20", "--batch-size", "7", "--num-workers", "0", "--device",
                                     "cpu", "--out", str(out)]) == 0
    npy = np.load(tmp_path / "svhn.npy")
    csv = np.loadtxt(tmp_path / "svhn.csv", delimiter=",", skiprows=1)
    assert npy.shape == (20,) and csv[:, 0].tolist() == list(range(20))
    np.testing.assert_allclose(csv[:, 1], npy, rtol=1e-7)
    model, _ = load_density_model(baseline)
    ds = get_dataset("mini-svhn", size=8)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(20)]))
    with torch.no_grad():
        np.testing.assert_allclose(npy, bits_per_dim(model.log_prob(x), x[0].numel()).double().numpy(), rtol=1e-5)


def test_sample_cli_writes_a_reproducible_png_grid(baseline, tmp_path):
    assert load_density_model(baseline)[0].trained_size == (8, 8)  # the trainer records its image size
    args = ["--ckpt", str(baseline), "--n", "4", "--nrow", "2", "--device", "cpu"]  # default: the trained size
    assert cli_main(sample.main, args + ["--out", str(tmp_path / "a.png")]) == 0
    assert cli_main(sample.main, args + ["--out", str(tmp_path / "b.png")]) == 0
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (2 + 2 * (8 + 2), 2 + 2 * (8 + 2))            # torchvision grid, padding 2
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert cli_main(sample.main, args + ["--out", str(tmp_path / "c.jpg")]) == 2


@pytest.mark.parametrize("module", ["train", "score", "sample", "port"])
def test_every_cli_explains_its_options(module, capsys):
    import importlib
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"density_oe.{module}").main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"python -m density_oe.{module}" in text and "--out" in text and "show full tracebacks" in text


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(tmp_path):
    """No dropout: a 2-process gloo run differs from the 1-process run only in the gradient all-reduce's float
    additions (data-dependent init and the EMA are identical on both ranks).  Adam divides each gradient element
    by its RMS, so rounding noise in elements whose gradient is near zero becomes a difference of up to the order
    of the learning rate (1e-3) per step: weights agree to 1e-4 and almost all of them to float rounding."""
    args = ["-m", "density_oe.train", *COMMON, "--dropout", "0", "--batch-size", "8", "--epochs", "1",
            "--limit-steps", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args,
           "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main(args[2:] + ["--out", str(tmp_path / "single")]) == 0
    ddp = load_checkpoint(tmp_path / "ddp", expect_kind="density")
    single = load_checkpoint(tmp_path / "single", expect_kind="density")
    for part in ("model", "eval_model"):
        diff = torch.cat([(ddp[part][k] - single[part][k]).abs().flatten() for k in single[part]])
        assert float(diff.max()) < 1e-4 and float((diff > 1e-6).float().mean()) < 1e-3
    for a, b in zip(history(tmp_path / "ddp"), history(tmp_path / "single")):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-4) for k in a)


def test_channels_last_training_matches_the_default_layout(tmp_path):
    """Same likelihoods per epoch.  (Weights are not compared: Adam turns rounding noise in near-zero gradient
    elements into steps of the order of the learning rate whatever the layout; the model tests compare
    channels_last gradients directly.)"""
    args = COMMON + ["--batch-size", "4", "--epochs", "2", "--limit-steps", "2", "--dropout", "0"]
    assert main(args + ["--out", str(tmp_path / "nchw")]) == 0
    assert main(args + ["--channels-last", "--out", str(tmp_path / "cl")]) == 0
    for a, b in zip(history(tmp_path / "nchw"), history(tmp_path / "cl")):
        for key in ("train_bpd", "test_bpd"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
