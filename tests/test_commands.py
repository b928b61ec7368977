"""``study.commands``: a tool's command line from its config dataclass, with only what differs from the defaults."""
from __future__ import annotations

import pytest

from classifiers_oe.config import ClassifierConfig
from density_oe.config import DensityConfig
from oe_core.cli_config import parse_config
from study.commands import IDENTITY, config_argv, option_argv, resolve, run_argv, tool_cmd


def test_only_what_differs_from_the_modes_defaults_is_passed():
    argv = config_argv(ClassifierConfig, {"mode": "oe_tune", "init": "runs/b", "lr": 0.001, "epochs": 3,
                                          "dataset": "cifar10", "outliers": "tinyimages80m"}, always=("mode", "init"))
    assert argv == ["--mode", "oe_tune", "--init", "runs/b", "--epochs", "3"]   # 0.001 is oe_tune's lr
    # the same lr differs from the baseline's 0.1: passed; a field named in always is passed at its default too
    assert config_argv(ClassifierConfig, {"mode": "baseline", "dataset": "cifar10", "lr": 0.001},
                       always=("mode", "dataset")) == ["--mode", "baseline", "--dataset", "cifar10", "--lr", "0.001"]
    # the density trainer's oe_tune defaults: batch 64, lr 2e-4, no EMA
    assert config_argv(DensityConfig, {"mode": "oe_tune", "init": "b", "batch_size": 64, "lr": 2e-4,
                                       "ema_decay": 0.5}, always=("mode", "init")) == \
        ["--mode", "oe_tune", "--init", "b", "--ema-decay", "0.5"]


def test_options_read_back_to_the_values():
    values = {"arch": "glow", "mode": "baseline", "batch_size": 512, "warmup_steps": 970, "lr_decay": 1.0,
              "data_init": False, "track_ood": ["svhn", "gaussian"], "out": "r"}
    argv = config_argv(DensityConfig, values, always=("arch", "mode", "out"))
    assert "--no-data-init" in argv and argv[argv.index("--track-ood"):][:3] == ["--track-ood", "svhn", "gaussian"]
    for cfg in (parse_config(DensityConfig, argv), resolve(DensityConfig, argv + ["--unknown-to-it", "1"])):
        assert {k: getattr(cfg, k) for k in values} == values
    assert resolve(DensityConfig, argv + ["--epochs", "5"]).epochs == 5   # later options win, as in the tool
    assert resolve(DensityConfig, ["--mode", "oe_tune"]).epochs == 2      # the mode's default is filled in


def test_flags_and_bad_field_names():
    assert option_argv("augment", True) == ["--augment"] and option_argv("augment", False) == ["--no-augment"]
    assert option_argv("track_ood", []) == [] and option_argv("lr_decay", 1.0) == ["--lr-decay", "1.0"]
    assert tool_cmd("py", "density_oe.score", ["--ckpt", "r"]) == ["py", "-m", "density_oe.score", "--ckpt", "r"]
    with pytest.raises(KeyError, match="ClassifierConfig has no field 'lr_dcay'"):
        config_argv(ClassifierConfig, {"lr_dcay": 1})


def test_a_runs_identity_is_passed_even_at_its_defaults():
    """The paper's graph and the mini-study build every command with ``run_argv``: the run's identity always."""
    assert IDENTITY == ("arch", "mode", "dataset", "data_root", "init", "out")
    values = {"arch": "pixelcnn", "mode": "baseline", "dataset": "cifar10", "out": "r", "lr": 1e-3, "seed": 2}
    assert run_argv(DensityConfig, values) == ["--arch", "pixelcnn", "--mode", "baseline", "--dataset", "cifar10",
                                               "--out", "r", "--seed", "2"]   # lr 1e-3: the baseline's default
    assert run_argv(ClassifierConfig, {"lr": 0.1, "depth": 16}) == ["--depth", "16"]   # no identity field given
