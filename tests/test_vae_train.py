"""The VAE through the density CLIs and the run engine: ELBO training, OE fine-tuning on the bound's bits/dim,
resume, scoring (also bf16), sampling, analysis.evaluate and the one-line errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.evaluate import main as evaluate_main
from analysis.results import Evaluation
from analysis.cached_scores import stored_scores
from density_oe import sample, score
from density_oe.archs import arch_for_model
from density_oe.train import main
from density_oe.vae import VAE, VAEConfig
from density_oe.weights import load_density_model
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import cli_main
from tests.density_family import check_oe_loss_is_the_hand_formula, check_resumed_run_is_bitwise_equal
from tests.test_density_train import history

VAE_ARGS = ["--arch", "vae", "--vae-levels", "2", "--vae-hidden", "8", "--vae-latent", "4"]
COMMON = ["--dataset", "mini-id", "--image-size", "8", *VAE_ARGS, "--num-workers", "0", "--no-progress",
          "--device", "cpu", "--eval-images", "32", "--test-batch-size", "32"]
BASELINE = COMMON + ["--batch-size", "16", "--epochs", "2", "--limit-steps", "40", "--lr", "3e-3",
                     "--ema-decay", "0.5"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae")
    assert main(BASELINE + ["--out", str(out)]) == 0
    return out


def oe_args(init: Path) -> list[str]:
    return COMMON + ["--mode", "oe_tune", "--init", str(init), "--outliers", "mini-outliers", "--batch-size", "3",
                     "--oe-batch-size", "5", "--epochs", "1", "--limit-steps", "2"]


def test_a_tiny_vae_trains_on_the_elbo_below_8_bits_per_dim(vae_run):
    rows = history(vae_run)
    assert rows[-1]["test_bpd"] < 8.0 and rows[-1]["train_bpd"] < rows[0]["train_bpd"]
    cfg = json.loads((vae_run / "config.json").read_text())
    assert cfg["arch"] == "vae" and cfg["vae_latent"] == 4 and cfg["vae_iw_samples"] == 1
    model, mcfg = load_density_model(vae_run)
    assert isinstance(model, VAE) and mcfg.vae_hidden == 8 and arch_for_model(model).name == "vae"


def test_oe_tune_loss_on_the_vae_is_the_hand_formula_on_the_bound(vae_run, tmp_path):
    model = check_oe_loss_is_the_hand_formula(oe_args(vae_run) + ["--out", str(tmp_path)])
    assert model.training                     # fresh posterior draws, the same ones for the check (seeded)
    assert float(model.encoder.head.conv.weight.grad.abs().sum()) > 0   # the bound's gradient reaches the encoder


def test_oe_tune_may_use_another_number_of_bound_samples_than_its_init(vae_run, tmp_path):
    """The OE fine-tune can push on IWAE-K (K = 4) from the ELBO-trained baseline: K changes no weight."""
    model = check_oe_loss_is_the_hand_formula(oe_args(vae_run) + ["--vae-iw-samples", "4", "--out", str(tmp_path)])
    assert model.iw_samples == 4
    base, _ = load_density_model(vae_run)
    assert base.iw_samples == 1 and all(torch.equal(a, b) for a, b in zip(base.state_dict().values(),
                                                                            model.state_dict().values()))


def test_oe_tune_cli_runs_and_keeps_the_architecture(vae_run, tmp_path):
    assert main(oe_args(vae_run) + ["--out", str(tmp_path)]) == 0
    model, mcfg = load_density_model(tmp_path)
    assert isinstance(model, VAE) and mcfg.vae_latent == 4
    assert "outlier_bpd" in history(tmp_path)[-1]


def test_resumed_vae_run_is_bitwise_equal(tmp_path):
    args = COMMON + ["--batch-size", "4", "--epochs", "2", "--limit-steps", "2", "--eval-images", "8",
                     "--ema-decay", "0.9"]
    check_resumed_run_is_bitwise_equal(args, tmp_path)


def _score(ckpt, tmp_path, name, *extra) -> np.ndarray:
    out = tmp_path / f"{name}.npy"
    assert cli_main(score.main, ["--ckpt", str(ckpt), "--dataset", "mini-svhn", "--image-size", "8", "--limit", "20",
                                 "--num-workers", "0", "--device", "cpu", "--out", str(out), *extra]) == 0
    return np.load(out)


def test_score_cli_gives_the_bound_in_bits_per_dim_independent_of_the_batch(vae_run, tmp_path):
    a, b = _score(vae_run, tmp_path, "a", "--batch-size", "7"), _score(vae_run, tmp_path, "b", "--batch-size", "20")
    np.testing.assert_allclose(a, b, rtol=1e-5)         # fixed draws per image; conv rounding varies with B
    model, _ = load_density_model(vae_run)
    ds = get_dataset("mini-svhn", size=8)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(20)]))
    with torch.no_grad():
        np.testing.assert_allclose(a, (-model.log_prob(x) / (192 * math.log(2))).double().numpy(), rtol=1e-5)
    bf16 = _score(vae_run, tmp_path, "c", "--batch-size", "20", "--amp", "bf16")
    assert np.abs(bf16 - a).max() <= 0.02 and not np.array_equal(bf16, a)


def test_bf16_keeps_the_heads_and_the_bound_in_float32(vae_run):
    model, _ = load_density_model(vae_run)
    x = to_unit_range(get_dataset("mini-id", size=8)[0][0][None])
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        mu, logvar = model.encode(x)
        out = model.decoder(mu)
        ll = model.log_prob(x)
    assert mu.dtype == logvar.dtype == out.dtype == ll.dtype == torch.float32


def test_sample_cli_infers_the_vae_and_uses_the_temperature(vae_run, tmp_path):
    args = ["--ckpt", str(vae_run), "--n", "4", "--nrow", "2", "--image-size", "8", "--device", "cpu"]
    for name, extra in (("a", ["--temperature", "0.5"]), ("b", ["--temperature", "0.5", "--arch", "vae"]),
                        ("c", ["--temperature", "1.0"])):
        assert cli_main(sample.main, args + extra + ["--out", str(tmp_path / f"{name}.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()


def test_evaluate_scores_the_vae_with_the_density_detectors(vae_run, tmp_path):
    out = tmp_path / "ev"
    argv = ["--ckpt", f"vae={vae_run}", "--detectors", "bpd", "typicality", "complexity_zlib",
            "--id-dataset", "mini-id,size=8", "--ood", "mini-svhn,size=8", "--limit", "30", "--num-to-avg", "2",
            "--device", "cpu", "--batch-size", "16", "--out", str(out), "--no-progress"]
    assert cli_main(evaluate_main, argv) == 0
    ev = Evaluation.load(out / "results.json")
    scores = stored_scores(ev, out / "results.json", "vae", "bpd")
    model, _ = load_density_model(vae_run)
    ds = get_dataset("mini-id", split="test", size=8)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(30)]))
    with torch.no_grad():
        expected = (-model.log_prob(x).double() / (192 * math.log(2))).numpy()
    np.testing.assert_allclose(scores.id_scores, expected, rtol=1e-5)
    assert {r.detector for r in ev.rows} >= {"bpd", "typicality", "complexity_zlib"}


@pytest.mark.slow
def test_vae_forward_is_one_graph_for_compile():
    torch.manual_seed(0)
    model = VAE(VAEConfig(vae_levels=2, vae_hidden=4, vae_latent=2, vae_iw_samples=3)).train()
    x = torch.randint(0, 256, (2, 3, 8, 8)).float() / 127.5 - 1.0
    explained = torch._dynamo.explain(lambda m, t: m(t).mean())(model, x)
    reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), reasons


def test_bad_input_is_one_line_and_exit_2(vae_run, tmp_path, capsys):
    assert cli_main(main, BASELINE + ["--vae-iw-samples", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--vae-iw-samples must be >= 1, got 0" in capsys.readouterr().err
    assert cli_main(main, COMMON + ["--image-size", "12", "--vae-levels", "3", "--out", str(tmp_path / "b")]) == 2
    assert "multiple of 8 (VAE halves the image 3 times), got 12" in capsys.readouterr().err
    i = COMMON.index("--image-size")
    no_size = COMMON[:i] + COMMON[i + 2:]
    assert cli_main(main, no_size + ["--vae-levels", "6", "--out", str(tmp_path / "c")]) == 2
    assert "VAE needs (3, H, W) with H and W multiples of 64" in capsys.readouterr().err
    # a VAE checkpoint given to another --arch
    assert cli_main(main, oe_args(vae_run) + ["--arch", "pixelcnn", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "holds a VAE" in err and err.count("\n") == 1
    assert cli_main(sample.main, ["--ckpt", str(vae_run), "--arch", "glow", "--out", str(tmp_path / "x.png")]) == 2
    assert "holds a VAE (--arch vae)" in capsys.readouterr().err
