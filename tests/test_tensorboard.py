"""--tensorboard on both trainers: per-step and per-epoch scalars as TensorBoard events; a clear error without it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from classifiers_oe.train import main as classifier_main
from density_oe.train import main as density_main
from oe_core.errors import cli_main

CLASSIFIER = ["--dataset", "toy-shapes", "--image-size", "8", "--depth", "10", "--widen-factor", "1",
              "--batch-size", "32", "--num-workers", "0", "--no-progress", "--device", "cpu", "--epochs", "2",
              "--limit-steps", "3"]
DENSITY = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "4",
           "--nr-logistic-mix", "1", "--batch-size", "4", "--epochs", "1", "--limit-steps", "2", "--eval-images", "8",
           "--num-workers", "0", "--no-progress", "--device", "cpu"]


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(folder / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_classifier_writes_step_and_epoch_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    assert classifier_main(CLASSIFIER + ["--tensorboard", "--out", str(tmp_path)]) == 0
    s = scalars(tmp_path)
    assert [step for step, _ in s["step/loss"]] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in s["step/lr"]] == [1, 2, 3, 4, 5, 6]
    rows = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("train_loss", "test_error", "test_loss", "lr"):
        assert [step for step, _ in s[f"epoch/{key}"]] == [1, 2]
        assert [v for _, v in s[f"epoch/{key}"]] == pytest.approx([r[key] for r in rows], rel=1e-6)
    # the epoch's train loss is the mean of its step losses
    assert s["epoch/train_loss"][0][1] == pytest.approx(sum(v for _, v in s["step/loss"][:3]) / 3, rel=1e-5)


def test_density_trainer_writes_its_own_logs(tmp_path):
    pytest.importorskip("tensorboard")
    assert density_main(DENSITY + ["--tensorboard", "--out", str(tmp_path)]) == 0
    s = scalars(tmp_path)
    assert [step for step, _ in s["step/train_bpd"]] == [1, 2]
    assert [step for step, _ in s["epoch/test_bpd"]] == [1]


def test_without_the_flag_no_events_are_written(tmp_path):
    assert classifier_main(CLASSIFIER + ["--epochs", "1", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "tensorboard").exists()


def test_without_tensorboard_installed_the_flag_says_how_to_add_it(tmp_path):
    code = ("import sys; sys.modules['tensorboard'] = None\n"
            "from oe_core.errors import cli_main\nfrom classifiers_oe.train import main\n"
            f"sys.exit(cli_main(main, {CLASSIFIER + ['--tensorboard', '--out', str(tmp_path / 'run')]!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --tensorboard needs the tensorboard package: pip install")
    assert not (tmp_path / "run").exists()   # refused before any work


def test_resumed_run_keeps_the_flag_runtime_only(tmp_path):
    """--tensorboard may be switched on when resuming (it does not change the result)."""
    assert cli_main(classifier_main, CLASSIFIER + ["--epochs", "1", "--out", str(tmp_path)]) == 0
    assert cli_main(classifier_main, CLASSIFIER + ["--epochs", "1", "--tensorboard", "--out", str(tmp_path)]) == 0
