"""``--perturb-rate``: the density trainer trains the likelihood ratio's background model on perturbed images
(Ren et al. 2019), with draws that depend only on (seed, rank, epoch, step)."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from density_oe.config import DensityConfig
from density_oe.train import DensityTask, main
from oe_core.cli_config import parse_config
from oe_core.errors import cli_main
from oe_core.run import StepContext
from oe_core.run.device import dist_info_from_env

ARGS = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix",
        "2", "--num-workers", "0", "--no-progress", "--device", "cpu", "--batch-size", "64", "--epochs", "1",
        "--limit-steps", "2", "--eval-images", "8", "--test-batch-size", "8"]


def training_images(tmp_path, rate: float, start: int = 0, epoch: int = 0) -> list[torch.Tensor]:
    cfg = parse_config(DensityConfig, ARGS + ["--out", str(tmp_path), "--perturb-rate", str(rate)])
    task = DensityTask(cfg)
    task.setup(StepContext(cfg, torch.device("cpu"), dist_info_from_env()))
    return [batch[0][0] for batch in itertools.islice(task.batches(epoch, start), 2)]


def test_the_training_images_are_perturbed_at_the_given_rate_and_the_rest_kept(tmp_path):
    clean, perturbed = training_images(tmp_path, 0.0), training_images(tmp_path, 0.25)
    for x, y in zip(clean, perturbed):
        assert x.dtype == y.dtype == torch.uint8 and x.shape == y.shape
        changed = (x != y).double().mean().item()
        assert changed == pytest.approx(0.25 * 255 / 256, abs=0.02)      # a uniform draw keeps the value 1/256
    assert not torch.equal(perturbed[0] != clean[0], perturbed[1] != clean[1])   # a new mask every step


def test_a_resumed_epoch_perturbs_as_an_uninterrupted_one(tmp_path):
    again = training_images(tmp_path, 0.25)
    resumed = training_images(tmp_path, 0.25, start=1)
    assert torch.equal(resumed[0], again[1])
    assert not torch.equal(training_images(tmp_path, 0.25, epoch=1)[0], again[0])   # another epoch, other draws


def test_a_background_run_trains_and_records_its_rate(tmp_path):
    assert main(ARGS + ["--out", str(tmp_path), "--perturb-rate", "0.2"]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["perturb_rate"] == 0.2


@pytest.mark.parametrize("rate", ["1.5", "-0.1"])
def test_a_rate_outside_0_1_is_one_line(tmp_path, capsys, rate):
    assert cli_main(main, ARGS + ["--out", str(tmp_path), "--perturb-rate", rate]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--perturb-rate must be in [0, 1]" in err[0]
    assert not (tmp_path / "config.json").exists()
