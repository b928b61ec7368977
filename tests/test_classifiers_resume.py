"""An interrupted classifier run resumed from its checkpoint equals the uninterrupted run, bit for bit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from classifiers_oe.config import ClassifierConfig
from classifiers_oe.train import ClassifierTask, main
from classifiers_oe.weights import read_weights
from oe_core.cli_config import parse_config
from oe_core.errors import Preempted
from oe_core.run import Engine, load_checkpoint
from tests.faults import preempting

# OE from scratch with dropout and augmentation on: every source of randomness is exercised.
ARGS = ["--dataset", "toy-shapes", "--image-size", "8", "--depth", "10", "--widen-factor", "1",
        "--batch-size", "32", "--num-workers", "0", "--no-progress", "--device", "cpu", "--mode", "oe_scratch",
        "--outliers", "gaussian", "--oe-batch-size", "64", "--dropout", "0.3", "--epochs", "3",
        "--limit-steps", "4"]
STEPS_PER_EPOCH = 4


PreemptedAt = preempting(ClassifierTask)


def history(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in json.loads((out / "metrics.json").read_text())]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    assert main(ARGS + ["--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("at, stopped_at", [
    (STEPS_PER_EPOCH - 1, {"epoch": 1, "step": 0}),     # signalled in the last step of epoch 1
    (STEPS_PER_EPOCH + 1, {"epoch": 1, "step": 2}),     # signalled in the middle of epoch 2
])
def test_resumed_run_equals_uninterrupted_run(uninterrupted, tmp_path, at, stopped_at):
    cfg = parse_config(ClassifierConfig, ARGS + ["--out", str(tmp_path)])
    with pytest.raises(Preempted):
        Engine(PreemptedAt(cfg, at)).run()
    position = load_checkpoint(tmp_path, expect_kind="classifier")["position"]
    assert {k: position[k] for k in stopped_at} == stopped_at
    assert main(ARGS + ["--out", str(tmp_path)]) == 0            # the same command resumes
    got, _ = read_weights(tmp_path)
    expected, _ = read_weights(uninterrupted)
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert history(tmp_path) == history(uninterrupted)
