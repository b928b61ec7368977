"""The diffusion family through the density CLIs: training, OE fine-tuning (the same loss), resume, scoring,
sampling, the detectors, ``--compile`` and bf16, and one-line errors on bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from density_oe import sample, score
from density_oe.archs import arch_for_model
from density_oe.diffusion import Diffusion, DiffusionConfig
from density_oe.train import main
from density_oe.weights import load_density_model
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import cli_main
from tests.density_family import check_oe_loss_is_the_hand_formula, check_resumed_run_is_bitwise_equal
from tests.test_density_train import history

DIFF = ["--arch", "diffusion", "--diffusion-channels", "8", "--diffusion-levels", "2", "--diffusion-blocks", "1",
        "--diffusion-t-samples", "4"]
COMMON = ["--dataset", "mini-id", "--image-size", "8", *DIFF, "--num-workers", "0", "--no-progress",
          "--device", "cpu", "--eval-images", "32", "--test-batch-size", "32"]
BASELINE = COMMON + ["--batch-size", "16", "--epochs", "2", "--limit-steps", "8", "--lr", "5e-3",
                     "--ema-decay", "0.5"]
DIMS = 3 * 8 * 8


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("diffusion")
    assert main(BASELINE + ["--out", str(out)]) == 0
    return out


def oe_args(init: Path) -> list[str]:
    return COMMON + ["--mode", "oe_tune", "--init", str(init), "--outliers", "mini-outliers", "--batch-size", "3",
                     "--oe-batch-size", "5", "--epochs", "1", "--limit-steps", "2"]


def mean_bpd(model, name: str, n: int = 32) -> float:
    ds = get_dataset(name, size=8)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(n)]))
    with torch.no_grad():
        return float((-model.eval().log_prob(x) / (DIMS * math.log(2))).mean())


def test_a_tiny_diffusion_trains_and_is_found_again_from_its_checkpoint(diffusion_run):
    rows = history(diffusion_run)
    cfg = json.loads((diffusion_run / "config.json").read_text())
    assert cfg["arch"] == "diffusion" and cfg["diffusion_channels"] == 8 and cfg["diffusion_t_samples"] == 4
    model, mcfg = load_density_model(diffusion_run)
    assert isinstance(model, Diffusion) and mcfg.diffusion_levels == 2 and arch_for_model(model).name == "diffusion"
    untrained = Diffusion(mcfg)
    assert rows[-1]["test_bpd"] == pytest.approx(mean_bpd(model, "mini-id"), rel=1e-5)   # test_bpd is the bound
    assert rows[-1]["test_bpd"] < mean_bpd(untrained, "mini-id") - 0.5                    # and training lowered it


def test_oe_tune_loss_on_diffusion_is_the_hand_formula(diffusion_run, tmp_path):
    model = check_oe_loss_is_the_hand_formula(oe_args(diffusion_run) + [
        "--out", str(tmp_path), "--diffusion-t-samples", "6", "--diffusion-train-t-samples", "3"])
    # the estimator's draws are the run's (the baseline's were 4 and 1): they do not shape the weights
    assert (model.cfg.diffusion_t_samples, model.t_samples) == (6, 3)


def gap(run: Path) -> float:
    """Mean bits/dim of held-back outliers (the last 64, not the first blocks trained on) minus that of
    in-distribution test images, under the run's scored weights and fixed draws."""
    model, _ = load_density_model(run)
    test, out = get_dataset("mini-id", "test", size=8), get_dataset("mini-outliers", size=8)
    x_in = to_unit_range(torch.stack([test[i][0] for i in range(64)]))
    x_out = to_unit_range(torch.stack([out[len(out) - 1 - i][0] for i in range(64)]))
    with torch.no_grad():
        return float(model.log_prob(x_in).mean() - model.log_prob(x_out).mean()) / (DIMS * math.log(2))


@pytest.mark.slow
def test_the_margin_loss_raises_the_outliers_bits_per_dim(tmp_path):
    """30 OE steps with and without the hinge (lam 1 vs 0) from one baseline, no dropout, 4 t-draws per image in
    training, margin 5 bits/dim (the baseline gap is already ~2).  Sized on seeds 1-3: the OE gap ended 0.58-0.79
    bits/dim above the lam-0 run's and 0.33-0.71 above the baseline's."""
    model = ["--diffusion-dropout", "0", "--diffusion-train-t-samples", "4", "--batch-size", "16", "--epochs", "1"]
    base = tmp_path / "base"
    assert main(COMMON + model + ["--limit-steps", "8", "--lr", "5e-3", "--ema-decay", "0", "--out", str(base)]) == 0
    tune = COMMON + model + ["--mode", "oe_tune", "--init", str(base), "--outliers", "mini-outliers",
                             "--limit-steps", "30", "--lr", "2e-3", "--outlier-sampling", "shuffle",
                             "--oe-margin", "5"]
    assert main(tune + ["--lam", "1", "--out", str(tmp_path / "oe")]) == 0
    assert main(tune + ["--lam", "0", "--out", str(tmp_path / "nll")]) == 0
    before, oe, nll = gap(base), gap(tmp_path / "oe"), gap(tmp_path / "nll")
    assert oe > nll + 0.3 and oe > before + 0.15, (before, oe, nll)


def test_resumed_diffusion_run_is_bitwise_equal(tmp_path):
    args = COMMON + ["--batch-size", "4", "--epochs", "2", "--limit-steps", "2", "--eval-images", "8"]
    check_resumed_run_is_bitwise_equal(args, tmp_path)                    # preempted at the first step of epoch 2


def test_score_cli_gives_the_same_bits_per_dim_at_any_batch_size(diffusion_run, tmp_path):
    outs = []
    for bs in ("7", "20"):
        outs.append(tmp_path / f"s{bs}.npy")
        assert cli_main(score.main, ["--ckpt", str(diffusion_run), "--dataset", "mini-svhn", "--image-size", "8",
                                     "--limit", "20", "--batch-size", bs, "--num-workers", "0", "--device", "cpu",
                                     "--out", str(outs[-1])]) == 0
    a, b = np.load(outs[0]), np.load(outs[1])
    np.testing.assert_allclose(a, b, rtol=1e-5)
    model, _ = load_density_model(diffusion_run)
    ds = get_dataset("mini-svhn", size=8)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(20)]))
    with torch.no_grad():
        np.testing.assert_allclose(a, (-model.log_prob(x) / (DIMS * math.log(2))).double().numpy(), rtol=1e-5)


def test_bf16_scoring_runs_the_net_in_bf16_and_stays_near_float32(diffusion_run, tmp_path):
    outs = {}
    for amp in ("none", "bf16"):
        outs[amp] = tmp_path / f"{amp}.npy"
        assert cli_main(score.main, ["--ckpt", str(diffusion_run), "--dataset", "mini-id", "--split", "test",
                                     "--image-size", "8", "--limit", "16", "--num-workers", "0", "--device", "cpu",
                                     "--amp", amp, "--out", str(outs[amp])]) == 0
    a, b = np.load(outs["none"]), np.load(outs["bf16"])
    assert not np.array_equal(a, b)                                   # bf16 really ran
    assert np.abs(a - b).max() < 0.05                                 # bits/dim
    model, _ = load_density_model(diffusion_run)
    x = torch.zeros(2, 3, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.log_prob(x).dtype == torch.float32               # the bound itself stays float32


def test_sample_cli_draws_with_the_ancestral_sampler(diffusion_run, tmp_path):
    args = ["--ckpt", str(diffusion_run), "--n", "4", "--nrow", "2", "--device", "cpu", "--no-progress"]
    for name, extra in (("a", ["--steps", "20"]), ("b", ["--steps", "20", "--arch", "diffusion"]),
                        ("c", ["--steps", "5"])):
        assert cli_main(sample.main, args + extra + ["--out", str(tmp_path / f"{name}.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    model, _ = load_density_model(diffusion_run)
    x = model.sample(3, 8, 8, steps=10, generator=torch.Generator().manual_seed(0))
    k = ((x + 1) * 127.5).round()
    assert x.shape == (3, 3, 8, 8) and k.min() >= 0 and k.max() <= 255 and len(k.unique()) > 20
    torch.testing.assert_close(x, k / 127.5 - 1, rtol=0, atol=1e-6)      # on the 8-bit grid


def test_bad_input_is_one_line_and_exit_2(diffusion_run, tmp_path, capsys):
    def err() -> str:
        text = capsys.readouterr().err.strip()
        assert len(text.splitlines()) == 1, text
        return text

    assert cli_main(main, COMMON + ["--diffusion-t-samples", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--diffusion-t-samples must be >= 1, got 0" in err()
    assert cli_main(main, COMMON + ["--diffusion-levels", "3", "--image-size", "6", "--out", str(tmp_path / "b")]) == 2
    assert "multiple of 4 (Diffusion halves the image 2 times)" in err()
    assert cli_main(sample.main, ["--ckpt", str(diffusion_run), "--arch", "pixelcnn",
                                  "--out", str(tmp_path / "x.png")]) == 2
    assert "holds a Diffusion (--arch diffusion)" in err()
    assert cli_main(main, oe_args(diffusion_run) + ["--arch", "pixelcnn", "--out", str(tmp_path / "c")]) == 2
    assert "holds a Diffusion" in err()
    assert cli_main(sample.main, ["--ckpt", str(diffusion_run), "--temperature", "0.7",
                                  "--out", str(tmp_path / "y.png")]) == 2
    assert "--temperature does not apply to Diffusion" in err()


def test_diffusion_bound_is_one_graph_without_breaks():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Diffusion(DiffusionConfig(diffusion_channels=8, diffusion_levels=2, diffusion_blocks=1))
    x = torch.randint(0, 256, (2, 3, 8, 8)).float() / 127.5 - 1.0
    for mode in (model.train, model.eval):                          # fresh draws, and the content-keyed ones
        mode()
        explained = torch._dynamo.explain(lambda m, t: m(t).mean())(model, x)
        reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), reasons
    torch._dynamo.reset()


def test_a_diffusion_run_through_the_graph_path_ends_with_the_eager_weights(tmp_path, monkeypatch):
    """The whole training step (fresh draws of t and noise included) through the CUDA-graph path, with the CPU
    stand-in that replays by calling: the same losses and weights as the eager engine."""
    from tests.test_cuda_graph import assert_graph_path_ends_with_the_eager_weights
    args = COMMON + ["--batch-size", "8", "--epochs", "1", "--limit-steps", "6", "--eval-images", "8"]
    assert assert_graph_path_ends_with_the_eager_weights(args, tmp_path, monkeypatch) > 0


def test_the_density_detectors_score_a_diffusion_checkpoint(diffusion_run, tmp_path):
    from analysis.evaluate import main as evaluate
    from analysis.results import Evaluation
    from analysis.cached_scores import stored_scores
    out = tmp_path / "ev"
    argv = ["--ckpt", f"diff={diffusion_run}", "--background", str(diffusion_run), "--detectors", "bpd",
            "likelihood_ratio", "complexity_zlib", "typicality", "--id-dataset", "mini-id:test,size=8,n=20",
            "--ood", "gaussian,size=8,n=20", "--num-to-avg", "2", "--device", "cpu", "--batch-size", "7",
            "--out", str(out)]
    assert cli_main(evaluate, argv) == 0
    ev = Evaluation.load(out / "results.json")
    got = {d: stored_scores(ev, out / "results.json", "diff", d).id_scores
           for d in ("bpd", "likelihood_ratio", "complexity_zlib", "typicality")}
    model, _ = load_density_model(diffusion_run)
    ds = get_dataset("mini-id", "test", size=8, n=20)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(20)]))
    with torch.no_grad():
        expected = (-model.log_prob(x) / (DIMS * math.log(2))).double().numpy()
    np.testing.assert_allclose(got["bpd"], expected, rtol=1e-5)
    np.testing.assert_allclose(got["likelihood_ratio"], 0.0, atol=1e-6)   # the same model as its background
    assert np.all(got["complexity_zlib"] < got["bpd"]) and np.all(got["typicality"] >= 0)
