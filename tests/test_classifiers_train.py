"""The classifier trainer on the toy task: accuracy, the OE step, the joint forward, schedule, CLI."""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from classifiers_oe.config import ClassifierConfig
from classifiers_oe.inputs import model_input
from classifiers_oe.losses import energy_oe_loss, oe_loss
from classifiers_oe.logits import uniform_cross_entropy
from classifiers_oe.train import ClassifierTask, main
from classifiers_oe.weights import read_weights
from oe_core.cli_config import build_parser, parse_config
from oe_core.data import get_dataset
from oe_core.errors import cli_main
from oe_core.run import DistInfo, StepContext

TOY = ["--dataset", "toy-shapes", "--image-size", "8", "--depth", "10", "--widen-factor", "1",
       "--batch-size", "32", "--num-workers", "0", "--no-progress", "--device", "cpu"]
OE = ["--outliers", "gaussian", "--oe-batch-size", "64"]


def train(out: Path, *args: str) -> list[dict]:
    assert main(TOY + ["--out", str(out), *args]) == 0
    return json.loads((out / "metrics.json").read_text())


def make_task(*args: str) -> tuple[ClassifierTask, StepContext]:
    cfg = parse_config(ClassifierConfig, TOY + ["--out", "unused", *args])
    ctx = StepContext(cfg=cfg, device=torch.device("cpu"), dist=DistInfo())
    task = ClassifierTask(cfg)
    task.setup(ctx)
    return task, ctx


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """A WRN-10-1 (with BatchNorm) trained on toy-shapes for 6 epochs."""
    out = tmp_path_factory.mktemp("baseline")
    train(out, "--epochs", "6", "--dropout", "0")
    return out


@pytest.fixture(scope="module")
def baseline_no_norm(tmp_path_factory) -> Path:
    """A BatchNorm-free WRN-10-1: train and eval forward passes coincide, so one step's effect is measurable."""
    out = tmp_path_factory.mktemp("baseline_nonorm")
    train(out, "--epochs", "6", "--dropout", "0", "--norm", "none", "--no-augment")
    return out


def test_a_few_epochs_on_the_toy_task_reach_high_accuracy(baseline):
    rows = json.loads((baseline / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["test_error"] < 10.0          # 10 classes: chance is 90% error
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    header = (baseline / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "time_s", "train_loss", "test_loss", "test_error"} <= set(header)
    saved = json.loads((baseline / "config.json").read_text())
    assert saved["epochs"] == 6 and saved["lr"] == 0.1 and saved["mode"] == "baseline"


def test_final_accuracy_is_printed(tmp_path, capsys):
    rows = train(tmp_path, "--epochs", "1", "--limit-steps", "2")
    assert f"final test accuracy: {100 - rows[-1]['test_error']:.2f}%" in capsys.readouterr().out


def test_one_oe_step_moves_outliers_toward_uniform_and_keeps_accuracy(baseline_no_norm):
    held_out = torch.stack([get_dataset("gaussian", size=8)[i][0] for i in range(5000, 5256)])

    def state(task, ctx, model):
        model.eval()
        with torch.no_grad():
            gap = float(uniform_cross_entropy(model(model_input(held_out, False))).mean()) - math.log(10)
            return gap, task.evaluate(model, ctx)["test_error"]

    results = {}
    for lam in ("0.5", "0"):   # the OE step, and a control step with the OE term switched off
        task, ctx = make_task("--mode", "oe_tune", "--init", str(baseline_no_norm), "--norm", "none",
                              "--dropout", "0", "--lam", lam, *OE)
        model = task.build_model()
        opt = task.build_optimizer(model)
        before = state(task, ctx, model)
        model.train()
        loss, _ = task.train_step(model, next(iter(task.batches(0, 0))), ctx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        results[lam] = before, state(task, ctx, model)
    (gap0, err0), (gap_oe, err_oe) = results["0.5"]
    gap_ctrl = results["0"][1][0]
    assert gap0 > 0.5                           # the baseline is far from uniform on noise
    assert gap_oe < gap0                        # OE moves held-out outliers toward uniform...
    assert gap0 - gap_oe > 2 * abs(gap0 - gap_ctrl)   # ... and it is the OE term that does it
    assert err_oe <= err0 + 1.0                 # in-distribution test error kept (within 1 point)


@pytest.mark.parametrize("loss_name, criterion", [
    ("oe", lambda zi, y, zo: oe_loss(zi, y, zo, lam=0.5)),
    ("energy", lambda zi, y, zo: energy_oe_loss(zi, y, zo, m_in=-25.0, m_out=-7.0, lam=0.1)),
])
def test_train_step_is_one_joint_forward_pass_with_the_chosen_loss(loss_name, criterion):
    task, ctx = make_task("--mode", "oe_scratch", "--dropout", "0", "--no-augment", "--oe-loss", loss_name, *OE)
    model = task.build_model().train()
    batch_sizes = []
    model.register_forward_pre_hook(lambda m, inp: batch_sizes.append(inp[0].shape[0]))
    (x_in, y), (x_out, _) = batch = next(iter(task.batches(0, 0)))
    loss, _ = task.train_step(model, batch, ctx)
    assert batch_sizes == [32 + 64]            # one pass: BatchNorm sees both batches
    with torch.no_grad():
        z = model(torch.cat([model_input(x_in, True), model_input(x_out, False)]))
    torch.testing.assert_close(loss.detach(), criterion(z[:32], y, z[32:]), rtol=1e-5, atol=1e-6)


def test_baseline_step_is_cross_entropy_only():
    task, ctx = make_task("--dropout", "0", "--no-augment")
    assert task.stream.out_loader is None
    model = task.build_model().train()
    (x, y), outliers = batch = next(iter(task.batches(0, 0)))
    assert outliers is None
    loss, _ = task.train_step(model, batch, ctx)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(model_input(x, True)), y)
    torch.testing.assert_close(loss.detach(), expected)


def test_bf16_autocast_and_channels_last_steps_agree_with_fp32():
    task, ctx = make_task("--mode", "oe_scratch", "--dropout", "0", "--no-augment", *OE)
    model = task.build_model().train()
    batch = next(iter(task.batches(0, 0)))
    loss32, _ = task.train_step(model, batch, ctx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, _ = task.train_step(model, batch, ctx)
    assert loss16.dtype == torch.float32 and math.isfinite(loss16.item())
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.05)
    cl_task, cl_ctx = make_task("--mode", "oe_scratch", "--dropout", "0", "--no-augment", "--channels-last", *OE)
    loss_cl, _ = cl_task.train_step(model.to(memory_format=torch.channels_last), batch, cl_ctx)
    assert loss_cl.item() == pytest.approx(loss32.item(), rel=1e-5)


def test_lr_schedule_is_the_reference_per_step_cosine_with_its_step_order():
    task, _ = make_task("--lr", "0.1")
    model = torch.nn.Linear(2, 2)
    opt = task.build_optimizer(model)
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 5e-4
    total = 50
    sched = task.build_scheduler(opt, total)
    used = []
    for _ in range(total):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # reference: LambdaLR stepped *before* each optimizer step, lr from 0.1 to 1e-6 (absolute)
    t = np.arange(1, total + 1)
    expected = 1e-6 + (0.1 - 1e-6) * 0.5 * (1 + np.cos(np.pi * t / total))
    np.testing.assert_allclose(used, expected, rtol=1e-9)
    assert used[-1] == pytest.approx(1e-6)


def test_mode_defaults_follow_the_reference():
    for mode, epochs, lr in (("baseline", 100, 0.1), ("oe_tune", 10, 0.001), ("oe_scratch", 100, 0.1)):
        extra = ["--init", "b"] if mode == "oe_tune" else []
        cfg = parse_config(ClassifierConfig, ["--mode", mode, *extra])
        assert (cfg.epochs, cfg.lr) == (epochs, lr)
        assert (cfg.arch, cfg.depth, cfg.widen_factor, cfg.dropout) == ("wrn", 40, 2, 0.3)
        assert (cfg.batch_size, cfg.oe_batch_size, cfg.test_batch_size) == (128, 256, 200)
        assert (cfg.lam, cfg.lr_min, cfg.outliers, cfg.seed) == (0.5, 1e-6, "tinyimages80m", 1)


def test_oe_tune_starts_from_the_baseline_weights(baseline, tmp_path):
    task, _ = make_task("--mode", "oe_tune", "--init", str(baseline), "--dropout", "0", *OE)
    sd, _ = read_weights(baseline)
    got = task.build_model().state_dict()
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    # a bare state dict as the reference saves it (here from DataParallel, with "module.")
    ref = tmp_path / "cifar10_wrn_baseline_epoch_99.pt"
    torch.save({f"module.{k}": v for k, v in sd.items()}, ref)
    task, _ = make_task("--mode", "oe_tune", "--init", str(ref), "--dropout", "0", *OE)
    got = task.build_model().state_dict()
    assert all(torch.equal(got[k], sd[k]) for k in sd)


def test_oe_tune_refuses_a_baseline_of_another_architecture(baseline, tmp_path, capsys):
    argv = TOY + ["--out", str(tmp_path), "--mode", "oe_tune", "--init", str(baseline), "--depth", "16", *OE]
    assert cli_main(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "depth: 10 vs 16" in err[0]


@pytest.mark.parametrize("args, message", [
    (["--mode", "oe_tune"], "needs --init"),
    (["--init", "x"], "only used by --mode oe_tune"),
    (["--arch", "allconv"], "needs 32x32 images"),
    (["--dataset", "gaussian"], "not a labelled in-distribution set"),
    (["--dataset", "cifar10", "--image-size", "16"], "fixed image size"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--mode", "oe_scratch", "--outliers", "nope"], "unknown dataset 'nope'"),
])
def test_bad_options_give_one_clear_error(tmp_path, capsys, args, message):
    assert cli_main(main, TOY + ["--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_help_documents_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    parser = build_parser(ClassifierConfig)
    for action in parser._actions:
        if action.dest in ("help", "debug") or action.help == argparse.SUPPRESS:  # hidden deprecated aliases
            continue
        assert action.help, action.dest
        assert action.option_strings[0] in text
        # every real default is stated (once: tests/test_cli_outputs.py), in "(default: X)" or in the help's words
        if action.default not in (None, "", False, []):
            assert re.search(r"\b(default|unset)\b", action.help, re.IGNORECASE), action.dest
