"""Glow through the density CLIs: training, OE fine-tuning (the same loss), resume, scoring and sampling."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from density_oe import sample, score
from density_oe.archs import ARCHS, arch_for_model, arch_of
from density_oe.config import DensityConfig
from density_oe.glow import Glow
from density_oe.pixelcnn.model import PixelCNNpp
from density_oe.train import main
from density_oe.weights import load_density_model
from oe_core.cli_config import parse_config
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import ConfigError, cli_main
from tests.density_family import check_oe_loss_is_the_hand_formula, check_resumed_run_is_bitwise_equal
from tests.test_density_train import history

GLOW = ["--arch", "glow", "--glow-levels", "2", "--glow-steps", "2", "--glow-hidden", "8"]
COMMON = ["--dataset", "mini-id", "--image-size", "8", *GLOW, "--num-workers", "0", "--no-progress",
          "--device", "cpu", "--eval-images", "32", "--test-batch-size", "32", "--init-batch-size", "32"]
BASELINE = COMMON + ["--batch-size", "16", "--epochs", "2", "--limit-steps", "5", "--lr", "5e-3",
                     "--ema-decay", "0.5"]


@pytest.fixture(scope="module")
def glow_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("glow")
    assert main(BASELINE + ["--out", str(out)]) == 0
    return out


def oe_args(init: Path) -> list[str]:
    return COMMON + ["--mode", "oe_tune", "--init", str(init), "--outliers", "mini-outliers", "--batch-size", "3",
                     "--oe-batch-size", "5", "--epochs", "2", "--limit-steps", "2"]


def test_a_tiny_glow_trains_below_the_uniform_8_bits_per_dim(glow_run):
    rows = history(glow_run)
    assert rows[-1]["test_bpd"] < 8.0 and rows[-1]["train_bpd"] < rows[0]["train_bpd"]
    cfg = json.loads((glow_run / "config.json").read_text())
    assert cfg["arch"] == "glow" and cfg["glow_levels"] == 2 and cfg["init_batch_size"] == 32
    model, mcfg = load_density_model(glow_run)
    assert isinstance(model, Glow) and mcfg.glow_hidden == 8 and arch_for_model(model).name == "glow"


def test_oe_tune_loss_on_glow_is_the_hand_formula(glow_run, tmp_path):
    check_oe_loss_is_the_hand_formula(oe_args(glow_run) + ["--out", str(tmp_path)])


def test_resumed_glow_run_is_bitwise_equal(tmp_path):
    args = COMMON + ["--batch-size", "4", "--epochs", "2", "--limit-steps", "2", "--eval-images", "8"]
    check_resumed_run_is_bitwise_equal(args, tmp_path)


def test_score_cli_gives_glow_bits_per_dim_deterministically(glow_run, tmp_path):
    outs = []
    for bs in ("7", "20"):
        outs.append(tmp_path / f"s{bs}.npy")
        assert cli_main(score.main, ["--ckpt", str(glow_run), "--dataset", "mini-svhn", "--image-size", "8",
                                     "--limit", "20", "--batch-size", bs, "--num-workers", "0", "--device", "cpu",
                                     "--out", str(outs[-1])]) == 0
    a, b = np.load(outs[0]), np.load(outs[1])
    np.testing.assert_allclose(a, b, rtol=1e-6)                      # one fixed noise draw: batching does not matter
    model, _ = load_density_model(glow_run)
    ds = get_dataset("mini-svhn", size=8)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(20)]))
    with torch.no_grad():
        np.testing.assert_allclose(a, (-model.log_prob(x) / (192 * math.log(2))).double().numpy(), rtol=1e-5)


def test_sample_cli_infers_glow_and_uses_the_temperature(glow_run, tmp_path):
    args = ["--ckpt", str(glow_run), "--n", "4", "--nrow", "2", "--image-size", "8", "--device", "cpu"]
    for name, extra in (("a", ["--temperature", "0.7"]), ("b", ["--temperature", "0.7", "--arch", "glow"]),
                        ("c", ["--temperature", "1.0"])):
        assert cli_main(sample.main, args + extra + ["--out", str(tmp_path / f"{name}.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()


def test_wrong_architecture_is_one_clear_error(glow_run, tmp_path, capsys):
    assert cli_main(sample.main, ["--ckpt", str(glow_run), "--arch", "pixelcnn", "--out", str(tmp_path / "x.png")]) == 2
    assert "holds a Glow (--arch glow)" in capsys.readouterr().err
    assert cli_main(main, oe_args(glow_run)[:] + ["--arch", "pixelcnn", "--out", str(tmp_path / "y")]) == 2
    assert "holds a Glow" in capsys.readouterr().err
    assert cli_main(main, COMMON + ["--image-size", "6", "--out", str(tmp_path / "z")]) == 2
    assert "multiple of 4 (Glow" in capsys.readouterr().err
    assert cli_main(main, COMMON + ["--arch", "flow", "--out", str(tmp_path / "w")]) == 2
    assert "flow" in capsys.readouterr().err


def _build(name: str, config: dict):
    arch = ARCHS.get(name)
    return arch.build(arch.config(config))


def test_architecture_registry_builds_by_name_and_reads_old_configs():
    assert {"glow", "pixelcnn", "vae", "diffusion"} <= set(ARCHS.names())
    assert arch_of({"nr_filters": 8}).name == "pixelcnn"             # checkpoints from before --arch
    assert isinstance(_build("pixelcnn", {"nr_resnet": 1, "nr_filters": 4}), PixelCNNpp)


@pytest.mark.parametrize("name, config", [("pixelcnn", {"nr_resnet": 1, "nr_filters": 4, "nr_logistic_mix": 2}),
                                          ("glow", {"glow_levels": 1, "glow_steps": 1, "glow_hidden": 4})])
def test_log_prob_takes_a_forward_output_computed_elsewhere(name, config):
    """The trainer runs forward through its DDP/compile wrapper and hands the output to ``log_prob``."""
    torch.manual_seed(0)
    net = _build(name, config).eval()
    x = torch.randint(0, 256, (2, 3, 4, 4)).float() / 127.5 - 1
    ll = net.log_prob(x)
    assert ll.shape == (2,) and bool((ll < 0).all())
    assert net.log_prob(x, out=net(x)).equal(ll)
    assert not net.log_prob(x, out=net(x.flip(0))).equal(ll)         # the given output is what is scored


def test_config_validates_only_the_chosen_family():
    base = ["--dataset", "mini-id", "--out", "unused"]
    assert parse_config(DensityConfig, base + ["--glow-levels", "0"]).arch == "pixelcnn"
    assert parse_config(DensityConfig, base + ["--arch", "glow", "--nr-resnet", "0"]).arch == "glow"
    with pytest.raises(ConfigError, match="--glow-levels"):
        parse_config(DensityConfig, base + ["--arch", "glow", "--glow-levels", "0"])
    with pytest.raises(ConfigError, match="--nr-resnet"):
        parse_config(DensityConfig, base + ["--nr-resnet", "0"])
