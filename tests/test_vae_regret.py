"""Likelihood Regret: the batched per-image re-optimisation against the authors' loop (deep copy of the encoder,
torch.optim.Adam, batch 1), ~0 where the encoder is already optimal, positive where it is not, the model left
unchanged, batch independence, and analysis.evaluate --detectors likelihood_regret."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.evaluate import main as evaluate_main
from analysis.results import Evaluation
from analysis.cached_scores import stored_scores
from benchmarks.vae_cases import authors_regret_after as reference_after   # the authors' loop
from density_oe.glow import Glow, GlowConfig
from density_oe.vae import regret
from density_oe.vae.regret import LikelihoodRegret, regret_nats
from oe_core.detectors import get_detector
from oe_core.errors import OEError, cli_main
from oe_core.run import save_checkpoint
from tests.test_glow_detectors import glow_ckpt
from tests.vae_toys import TINY, LinearEncoder, LinearGaussianVAE, images, linear_data, tiny_vae


def test_batched_regret_equals_the_authors_one_image_loop():
    model = tiny_vae().eval()
    model.iw_samples = 4
    x = images(3)
    before, after = regret_nats(model, x, steps=8)
    with torch.no_grad():
        torch.testing.assert_close(before, model.log_prob(x))
    torch.testing.assert_close(after, reference_after(model, x, steps=8), rtol=1e-5, atol=2e-3)
    assert bool((after != before).all())


def test_stacked_adam_is_torch_adam_on_every_copy():
    """Gradients small enough that the weight decay (5e-5 x parameter) matters."""
    g = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, generator=g, dtype=torch.float64)
    grads = [torch.randn(3, 4, generator=g, dtype=torch.float64) * 1e-4 for _ in range(6)]
    stacked = start.clone()
    opt = regret.StackedAdam([stacked], regret.LR, regret.BETAS, regret.WEIGHT_DECAY)
    for gr in grads:
        opt.step([gr])
    for i in range(3):
        p = start[i].clone().requires_grad_(True)
        ref = torch.optim.Adam([p], lr=regret.LR, betas=regret.BETAS, weight_decay=regret.WEIGHT_DECAY)
        for gr in grads:
            p.grad = gr[i].clone()
            ref.step()
        torch.testing.assert_close(stacked[i], p.detach(), rtol=0, atol=1e-12)


def test_regret_is_about_zero_where_the_encoder_is_optimal_and_positive_where_it_is_not():
    """Linear-Gaussian VAE, the paper's 100 steps at lr 2e-4: with the exact posterior as encoder the ELBO has
    nothing to gain; a poor encoder gains."""
    x = linear_data(4)
    exact = LinearGaussianVAE()
    b, a = regret_nats(exact, x)
    assert float((a - b).abs().max()) < 0.05
    enc = exact.exact_encoder()
    poor = LinearGaussianVAE(LinearEncoder(enc.a.detach() * 0.5, enc.c.detach() + 0.3, enc.logvar.detach() + 1.0))
    b, a = regret_nats(poor, x)
    assert float((a - b).min()) > 0.15


def test_regret_is_positive_on_a_toy_image_the_vae_does_not_fit():
    model = tiny_vae().eval()
    board = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 2.0 - 1).expand(1, 3, 8, 8)
    score = LikelihoodRegret(model).predict(board)
    assert score.dtype == torch.float64 and float(score) > 0


def test_the_model_is_unchanged_and_scores_do_not_depend_on_the_batch():
    model = tiny_vae().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    x = images(4)
    det = LikelihoodRegret(model, steps=5)
    whole = det.predict(x)
    single = torch.cat([det.predict(x[i:i + 1]) for i in range(4)])
    # The score is the difference of two float32 bounds of about 8 bits/dim, whose reduction order differs between
    # a batch and single images (and with the thread count: 2.8e-6 apart with 2 threads, 9e-7 with one): allow 16
    # float32 ulps of such a bound; a score that depends on its batch-mates moves by the score's own size (~1e-4).
    atol = 16 * torch.finfo(torch.float32).eps * 8
    torch.testing.assert_close(single, whole, rtol=0, atol=atol)
    assert model.training and flags == [p.requires_grad for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_the_detector_is_registered_with_the_papers_procedure_and_refuses_other_families():
    entry = get_detector("likelihood_regret")
    assert entry.kind == "density" and entry.needs_grad
    assert (regret.STEPS, regret.LR, regret.BETAS, regret.WEIGHT_DECAY) == (100, 2e-4, (0.9, 0.999), 5e-5)
    with pytest.raises(OEError, match="scores VAEs .* not a Glow"):
        entry.build(Glow(GlowConfig(glow_levels=1, glow_steps=1, glow_hidden=2)))


@pytest.mark.slow
def test_evaluate_runs_likelihood_regret_on_the_vae_and_skips_other_families(tmp_path, capsys):
    model = tiny_vae()
    cfg = {**TINY, "vae_iw_samples": 1, "arch": "vae", "out": str(tmp_path / "vae")}
    save_checkpoint(tmp_path / "vae", {"kind": "density", "config": cfg, "model": model.state_dict(),
                                       "eval_model": None}, kind="density", step=1, epoch=1)
    glow_ckpt(tmp_path / "glow", 0)
    out = tmp_path / "ev"
    common = ["--detectors", "bpd", "likelihood_regret", "--id-dataset", "toy-shapes,size=8,n=12", "--ood",
              "gaussian,size=8,n=10", "--num-to-avg", "2", "--device", "cpu", "--batch-size", "8", "--no-progress"]
    argv = ["--ckpt", f"vae={tmp_path / 'vae'}", f"glow={tmp_path / 'glow'}", *common, "--out", str(out)]
    assert cli_main(evaluate_main, argv) == 0
    ev = Evaluation.load(out / "results.json")
    lr = stored_scores(ev, out / "results.json", "vae", "likelihood_regret")
    assert lr.id_scores.shape == (12,) and np.isfinite(lr.id_scores).all() and lr.id_scores.dtype == np.float64
    assert not np.allclose(lr.id_scores, 0)
    assert {(r.model, r.detector) for r in ev.rows} == {("vae", "bpd"), ("vae", "likelihood_regret"),
                                                       ("glow", "bpd")}
    # only models it does not apply to: one line, exit 2, before any scoring
    assert cli_main(evaluate_main, ["--ckpt", f"glow={tmp_path / 'glow'}", *common, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "detector 'likelihood_regret' applies to none of the given models" in err and err.count("\n") == 1
