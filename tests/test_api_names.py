"""One name per concept: --init and --lam on both trainers (old names warn), old saved configs still load,
no package loop, every dataset registered by importing oe_core.data."""
from __future__ import annotations

import subprocess
import sys

import pytest

from classifiers_oe.config import ClassifierConfig
from density_oe.config import DensityConfig
from oe_core.cli_config import config_from_dict, parse_config


@pytest.mark.parametrize("cls, args", [
    (ClassifierConfig, ["--mode", "oe_tune"]),
    (DensityConfig, ["--mode", "oe_tune"]),
])
def test_init_and_lam_are_the_options_on_both_trainers(cls, args):
    cfg = parse_config(cls, args + ["--init", "runs/a", "--lam", "0.25"])
    assert (cfg.init, cfg.lam) == ("runs/a", 0.25)


@pytest.mark.parametrize("cls, old, field, value", [
    (ClassifierConfig, ["--mode", "oe_tune", "--baseline", "runs/a"], "init", "runs/a"),
    (ClassifierConfig, ["--mode", "oe_scratch", "--oe-lambda", "0.3"], "lam", 0.3),
    (ClassifierConfig, ["--mode", "oe_scratch", "--oe-loss", "energy", "--energy-weight", "0.2"], "lam", 0.2),
    (DensityConfig, ["--mode", "oe_tune", "--init", "x", "--oe-lambda", "0.3"], "lam", 0.3),
])
def test_old_option_names_still_work_and_warn(cls, old, field, value):
    with pytest.warns(FutureWarning, match="is deprecated; use --"):
        cfg = parse_config(cls, old)
    assert getattr(cfg, field) == value


def test_lam_defaults_to_the_weight_of_the_chosen_loss():
    assert parse_config(ClassifierConfig, ["--mode", "oe_scratch"]).lam == 0.5
    assert parse_config(ClassifierConfig, ["--mode", "oe_scratch", "--oe-loss", "energy"]).lam == 0.1
    assert parse_config(DensityConfig, []).lam == 1.0


def test_configs_saved_under_the_old_field_names_load():
    cfg = config_from_dict(ClassifierConfig, {"mode": "oe_tune", "baseline": "runs/b", "oe_lambda": 0.4})
    assert (cfg.init, cfg.lam) == ("runs/b", 0.4)
    assert config_from_dict(DensityConfig, {"oe_lambda": 0.7}).lam == 0.7
    # a saved config that has both (never written, but unambiguous) keeps the new name's value
    assert config_from_dict(DensityConfig, {"oe_lambda": 0.7, "lam": 0.2}).lam == 0.2


def _fresh_import(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_config_module_does_not_import_the_run_package():
    """oe_core.run imports oe_core.cli_config; the other way round would be a package loop."""
    assert _fresh_import("import sys, oe_core.cli_config; print('oe_core.run' in sys.modules)") == "False"


def test_importing_oe_core_data_registers_every_dataset():
    out = _fresh_import("import sys, oe_core.data as d; "
                        "print('toy-shapes' in d.DATASETS, 'mini-id' in d.DATASETS, 'classifiers_oe' in sys.modules)")
    assert out == "True True False"


def test_a_run_folder_of_before_the_renames_resumes(tmp_path):
    """The engine compares the saved config after bringing its field names up to date."""
    import json

    from classifiers_oe.train import main
    args = ["--dataset", "toy-shapes", "--image-size", "8", "--depth", "10", "--widen-factor", "1", "--batch-size",
            "64", "--num-workers", "0", "--no-progress", "--device", "cpu", "--limit-steps", "1", "--epochs", "1",
            "--out", str(tmp_path)]
    assert main(args) == 0
    from oe_core.run import load_checkpoint, save_checkpoint
    state = load_checkpoint(tmp_path)
    old = dict(state["config"])
    old["baseline"], old["oe_lambda"], old["energy_weight"] = old.pop("init"), old.pop("lam"), 0.1
    state["config"] = old
    for k in ("meta", "sha256", "path"):
        state.pop(k)
    save_checkpoint(tmp_path, state, kind="classifier", step=1, epoch=1)
    assert main(args) == 0   # the config check passes: "already trained"
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == 1


@pytest.mark.parametrize("trainer", ["classifier", "density"])
def test_a_run_folder_saved_before_an_option_existed_resumes(tmp_path, trainer):
    """An option added later is compared at its default: old run folders resume (a density run saved before
    --perturb-rate was refused with 'perturb_rate: None -> 0.0')."""
    import json

    from classifiers_oe.train import main as classifier_main
    from density_oe.train import main as density_main
    from oe_core.run import load_checkpoint, save_checkpoint
    main, added, model = {"classifier": (classifier_main, "oe_batch_size", ["--depth", "10", "--widen-factor", "1"]),
                          "density": (density_main, "perturb_rate", ["--nr-resnet", "1", "--nr-filters", "4",
                                                                     "--nr-logistic-mix", "1", "--eval-images", "8"])
                          }[trainer]
    args = ["--dataset", "toy-shapes", "--image-size", "8", *model, "--batch-size", "8", "--num-workers", "0",
            "--no-progress", "--device", "cpu", "--limit-steps", "1", "--epochs", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    state = load_checkpoint(tmp_path)
    state["config"] = {k: v for k, v in state["config"].items() if k != added}
    kind = state["meta"]["kind"]
    for k in ("meta", "sha256", "path"):
        state.pop(k)
    save_checkpoint(tmp_path, state, kind=kind, step=1, epoch=1)
    assert main(args) == 0   # the config check passes: "already trained"
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == 1


def test_conda_env_takes_pytorch_from_conda_forge_and_declares_no_unused_dependency():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = (root / "environment.yml").read_text()
    channels = env.split("channels:")[1].split("dependencies:")[0]
    assert "conda-forge" in channels and "- pytorch" not in channels
    assert "einops" not in env and "einops" not in (root / "pyproject.toml").read_text()
