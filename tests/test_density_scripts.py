"""The CIFAR-10 PixelCNN++, Glow, VAE and diffusion scripts assemble valid command lines (smoke run on the offline
mini sets)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("density_*.sh"))
# Overrides that turn a CIFAR-10 run into a seconds-long mini run (later options win in argparse).
MINI = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "8",
        "--nr-logistic-mix", "2", "--epochs", "1", "--limit-steps", "2", "--batch-size", "8", "--eval-images", "16",
        "--outliers", "mini-outliers", "--device", "cpu", "--num-workers", "0", "--no-progress"]


def run(script: str, tmp_path: Path, *extra: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OE_PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "DATA_ROOT": str(tmp_path),
           "OUT": str(tmp_path / "runs"), **env_extra}
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)


def test_every_script_is_valid_bash():
    assert [s.name for s in SCRIPTS] == ["density_cifar10_baseline.sh", "density_cifar10_diffusion_baseline.sh",
                                         "density_cifar10_diffusion_oe_tune.sh", "density_cifar10_diffusion_score.sh",
                                         "density_cifar10_glow_baseline.sh",
                                         "density_cifar10_glow_oe_tune.sh", "density_cifar10_glow_score.sh",
                                         "density_cifar10_oe_tune.sh", "density_cifar10_score.sh",
                                         "density_cifar10_vae_baseline.sh", "density_cifar10_vae_oe_tune.sh",
                                         "density_cifar10_vae_score.sh", "density_run.sh"]
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), script
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_scripts_need_data_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATA_ROOT"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "density_cifar10_baseline.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DATA_ROOT" in proc.stderr


@pytest.mark.slow
def test_baseline_oe_tune_and_score_scripts_chain(tmp_path):
    for script in ("density_cifar10_baseline.sh", "density_cifar10_oe_tune.sh"):
        proc = run(script, tmp_path, *MINI)
        assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((tmp_path / "runs" / "cifar10_pixelcnn_oe_tune" / "config.json").read_text())
    assert cfg["mode"] == "oe_tune" and cfg["init"] == str(tmp_path / "runs" / "cifar10_pixelcnn_baseline")
    proc = run("density_cifar10_score.sh", tmp_path, "cifar10_pixelcnn_oe_tune", "--image-size", "8", "--limit",
               "10", "--device", "cpu", "--num-workers", "0", SETS="mini-svhn gaussian")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("mini-svhn", "gaussian"):
        scores = np.load(tmp_path / "runs" / "scores" / "cifar10_pixelcnn_oe_tune" / f"{name}.npy")
        assert scores.shape == (10,) and np.isfinite(scores).all()


@pytest.mark.slow
def test_glow_scripts_chain_with_the_same_oe_recipe(tmp_path):
    glow = ["--glow-levels", "2", "--glow-steps", "1", "--glow-hidden", "4", "--init-batch-size", "8",
            *MINI[MINI.index("--epochs"):], "--dataset", "mini-id", "--image-size", "8"]
    for script in ("density_cifar10_glow_baseline.sh", "density_cifar10_glow_oe_tune.sh"):
        proc = run(script, tmp_path, *glow)
        assert proc.returncode == 0, proc.stderr[-2000:]
    runs = tmp_path / "runs"
    base = json.loads((runs / "cifar10_glow_baseline" / "config.json").read_text())
    assert base["arch"] == "glow" and base["warmup_steps"] == 970 and base["lr"] == 1e-3 and base["lr_decay"] == 1
    oe = json.loads((runs / "cifar10_glow_oe_tune" / "config.json").read_text())
    assert oe["arch"] == "glow" and oe["init"] == str(runs / "cifar10_glow_baseline")
    assert (oe["lr"], oe["oe_margin"], oe["oe_margin_unit"], oe["lam"]) == (2e-4, 1.0, "bits_per_dim", 1.0)
    proc = run("density_cifar10_glow_score.sh", tmp_path, "", "--image-size", "8", "--limit", "10",  # default RUN
               "--device", "cpu", "--num-workers", "0", SETS="mini-svhn")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = np.load(runs / "scores" / "cifar10_glow_baseline" / "mini-svhn.npy")
    assert scores.shape == (10,) and np.isfinite(scores).all()


@pytest.mark.slow
def test_diffusion_scripts_chain_with_vdm_settings_and_the_same_oe_loss(tmp_path):
    diff = ["--diffusion-channels", "8", "--diffusion-levels", "2", "--diffusion-blocks", "1",
            "--diffusion-t-samples", "2", *MINI[MINI.index("--epochs"):], "--dataset", "mini-id", "--image-size", "8"]
    for script in ("density_cifar10_diffusion_baseline.sh", "density_cifar10_diffusion_oe_tune.sh"):
        proc = run(script, tmp_path, *diff)
        assert proc.returncode == 0, proc.stderr[-2000:]
    runs = tmp_path / "runs"
    base = json.loads((runs / "cifar10_diffusion_baseline" / "config.json").read_text())
    assert base["arch"] == "diffusion" and (base["lr"], base["beta1"], base["beta2"]) == (2e-4, 0.9, 0.99)
    assert (base["warmup_steps"], base["lr_decay"], base["ema_decay"]) == (100, 1, 0.9999)
    assert (base["diffusion_gamma_min"], base["diffusion_gamma_max"], base["diffusion_train_t_samples"]) == \
        (-13.3, 5.0, 1)
    oe = json.loads((runs / "cifar10_diffusion_oe_tune" / "config.json").read_text())
    assert oe["arch"] == "diffusion" and oe["init"] == str(runs / "cifar10_diffusion_baseline")
    assert (oe["lr"], oe["oe_margin"], oe["oe_margin_unit"], oe["lam"]) == (2e-4, 1.0, "bits_per_dim", 1.0)
    assert oe["diffusion_train_t_samples"] == 4
    proc = run("density_cifar10_diffusion_score.sh", tmp_path, "", "--image-size", "8", "--limit", "10",
               "--device", "cpu", "--num-workers", "0", SETS="mini-svhn")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = np.load(runs / "scores" / "cifar10_diffusion_baseline" / "mini-svhn.npy")
    assert scores.shape == (10,) and np.isfinite(scores).all()


@pytest.mark.slow
def test_vae_scripts_chain_with_the_lr_recipe_and_the_same_oe_loss(tmp_path):
    vae = ["--vae-levels", "2", "--vae-hidden", "4", "--vae-latent", "2", *MINI[MINI.index("--epochs"):],
           "--dataset", "mini-id", "--image-size", "8"]
    for script in ("density_cifar10_vae_baseline.sh", "density_cifar10_vae_oe_tune.sh"):
        proc = run(script, tmp_path, *vae)
        assert proc.returncode == 0, proc.stderr[-2000:]
    runs = tmp_path / "runs"
    base = json.loads((runs / "cifar10_vae_baseline" / "config.json").read_text())
    assert base["arch"] == "vae" and (base["lr"], base["lr_decay"], base["vae_iw_samples"]) == (3e-4, 1, 1)
    assert base["batch_size"] == 8 and base["epochs"] == 1          # the smoke overrides win
    oe = json.loads((runs / "cifar10_vae_oe_tune" / "config.json").read_text())
    assert oe["arch"] == "vae" and oe["init"] == str(runs / "cifar10_vae_baseline")
    assert (oe["lr"], oe["oe_margin"], oe["oe_margin_unit"], oe["lam"]) == (2e-4, 1.0, "bits_per_dim", 1.0)
    proc = run("density_cifar10_vae_score.sh", tmp_path, "", "--image-size", "8", "--limit", "10",
               "--device", "cpu", "--num-workers", "0", SETS="mini-svhn")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = np.load(runs / "scores" / "cifar10_vae_baseline" / "mini-svhn.npy")
    assert scores.shape == (10,) and np.isfinite(scores).all()
