"""The benchmark cases of the density families without a reference implementation (VAE, diffusion): they run at
the quick size on the CPU without the pclucas14 port, both variants do the same work, they are at the sizes of the
CIFAR-10 scripts' runs, and ``reproduce --plan`` estimates those runs from their measured rows.  No speed is
asserted."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from benchmarks import diffusion_cases, vae_cases
from benchmarks.cases import CASES
from benchmarks.plain_baseline import PLAIN
from benchmarks.run import main
from benchmarks.sizes import PROFILES
from benchmarks.workload import BASE, FAST, BenchContext
from density_oe.config import DensityConfig
from density_oe.units import bits_per_dim
from density_oe.vae import VAE, VAEConfig, regret
from oe_core.cli_config import parse_config
from study import paper as R
from study.paper.estimates import BENCH_DIR, estimate_s
from study.paper.recipe import SCORE_SETS, SET_IMAGES

QUICK = BenchContext(device=torch.device("cpu"), amp="none", sizes=PROFILES["quick"])


def test_vae_cases_run_through_the_harness_without_the_port(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--cases", "vae_regret", "vae_train", "vae_score", "--no-linearity", "--repeats", "1",
                 "--threads", "1", "--port-dir", str(tmp_path / "no-port-here"), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert list(results["cases"]) == ["vae_train", "vae_score", "vae_regret"] and results["port"] is None
    quick = PROFILES["quick"]
    images = {"vae_train": quick.paper_batch, "vae_score": quick.score_batch, "vae_regret": quick.regret_batch}
    for name, case in results["cases"].items():
        assert quick.vae.label() in case["detail"] and case["images_per_call"] == images[name]
        assert case[FAST]["flops_per_call"] > 0 and case[BASE]["flops_per_call"] > 0
        if name != "vae_regret":      # the same network, the same work (vmap's grouped convolutions count apart)
            assert case["baseline"] == PLAIN and case[FAST]["flops_per_call"] == case[BASE]["flops_per_call"]
    assert "authors' loop" in results["cases"]["vae_regret"]["baseline"]
    assert f"{quick.regret_steps} steps per image" in results["cases"]["vae_regret"]["detail"]
    assert "vae_regret" in capsys.readouterr().out


def trained_heads(model: VAE) -> VAE:
    """``model`` with random heads, as after training: at initialisation both heads are zero, so q(z|x) = p(z), the
    decoder's output is the same for every z and image, and the bound depends on neither the network nor the draws."""
    with torch.no_grad():
        for head in (model.encoder.head.conv, model.decoder.head.conv):
            head.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    return model


@pytest.fixture
def trained_like(monkeypatch):
    untrained = vae_cases.vae_model
    monkeypatch.setattr(vae_cases, "vae_model", lambda ctx: trained_heads(untrained(ctx)))


def test_vae_score_variants_give_the_bits_per_dim_of_the_sized_vae(trained_like):
    ctx = dataclasses.replace(QUICK, sizes=dataclasses.replace(QUICK.sizes, score_batch=3))
    work = CASES.get("vae_score").build(ctx)
    fast, base = work.variants[FAST]()(), work.variants[BASE]()()
    s = PROFILES["quick"].vae
    torch.manual_seed(QUICK.seed)
    model = trained_heads(VAE(VAEConfig(vae_levels=s.levels, vae_hidden=s.hidden, vae_latent=s.latent,
                                        vae_iw_samples=s.iw_samples))).eval()
    x = ctx.images(3)
    with torch.no_grad():
        want = bits_per_dim(model.log_prob(x).double(), x[0].numel()).numpy()
    assert isinstance(fast, np.ndarray) and fast.dtype == np.float64 and fast.shape == (3,) == (work.images,)
    np.testing.assert_allclose(fast, want, rtol=1e-6)
    np.testing.assert_allclose(base.double().numpy(), want, rtol=1e-6)


def test_vae_train_variants_take_the_same_optimizer_step_on_the_elbo(trained_like):
    work = CASES.get("vae_train").build(QUICK)
    steps = {v: work.variants[v]() for v in (FAST, BASE)}
    losses = {}
    for v, step in steps.items():
        torch.manual_seed(5)
        first = step()
        torch.manual_seed(5)
        losses[v] = (first, step())      # same images, same posterior draws, the weights after one Adam step
    x = QUICK.images(work.images)
    model = vae_cases.vae_model(QUICK).train()
    torch.manual_seed(5)
    elbo_bpd = bits_per_dim(model(x), x[0].numel()).mean()
    for v, (first, second) in losses.items():
        assert first.item() == pytest.approx(elbo_bpd.item(), rel=1e-6), v
        assert second.item() < first.item(), v
    assert losses[FAST][1].item() == pytest.approx(losses[BASE][1].item(), rel=1e-5)


def test_vae_regret_variants_give_the_same_scores(trained_like):
    """The detector (batched, vmap) and the authors' one-image loop score alike, over 30 steps."""
    work = CASES.get("vae_regret").build(dataclasses.replace(QUICK, sizes=dataclasses.replace(QUICK.sizes,
                                                                                                regret_steps=30)))
    fast, base = work.variants[FAST]()(), work.variants[BASE]()()
    assert fast.shape == base.shape == (PROFILES["quick"].regret_batch,)
    assert bool((fast > 1e-4).all())
    torch.testing.assert_close(fast, base, rtol=2e-3, atol=1e-6)
    assert PROFILES["cpu"].regret_steps == PROFILES["gpu"].regret_steps == regret.STEPS == 100   # the paper's


def _graph(tmp_path, *flags: str) -> dict:
    o = R.parser().parse_args(["--plan", *flags])
    o.out, o.data_root = tmp_path / "runs", tmp_path
    return {n.name: n for n in R.build_graph(o, "python")}


def test_the_cases_are_at_the_cifar10_scripts_sizes(tmp_path):
    """The VAE and diffusion rows time the networks (and the VAE's K, which its score nodes read from the
    checkpoint) that the CIFAR-10 scripts train, with the recipe's learning rate."""
    g = _graph(tmp_path, "--vae", "--diffusion")
    vae = {m: parse_config(DensityConfig, g[f"cifar10_vae_{m}"].cmds[0][3:]) for m in ("baseline", "oe_tune")}
    diff = parse_config(DensityConfig, g["cifar10_diffusion_baseline"].cmds[0][3:])
    assert all("--vae-iw-samples" not in " ".join(c) for c in g["score_cifar10_vae_baseline"].cmds)
    for profile in ("cpu", "gpu"):
        s, d = PROFILES[profile].vae, PROFILES[profile].diffusion
        for cfg in vae.values():
            assert (cfg.vae_levels, cfg.vae_hidden, cfg.vae_latent, cfg.vae_iw_samples) == \
                (s.levels, s.hidden, s.latent, s.iw_samples)
        assert (diff.diffusion_channels, diff.diffusion_levels, diff.diffusion_blocks) == (d.channels, d.levels,
                                                                                           d.blocks)
    assert (vae["baseline"].lr, diff.lr) == (vae_cases.LR, diffusion_cases.LR)
    assert PROFILES["cpu"].vae.iw_samples == 1 == VAEConfig().vae_iw_samples   # the ELBO, the paper-size default


def test_the_plan_estimates_the_vae_nodes_from_the_measured_rows(tmp_path):
    bench = json.loads((BENCH_DIR / "cpu.json").read_text())
    for fam in R.DENSITY.values():
        for case in filter(None, (fam.train_case, fam.score_case)):
            assert case in CASES.names() and bench["cases"][case][FAST]["images_per_s"] > 0, case
    g = _graph(tmp_path, "--vae")
    assert g["cifar10_vae_baseline"].estimate == ["vae_train", 200 * 50000]
    assert g["cifar10_vae_oe_tune"].estimate == ["vae_train", 2 * 50000 * 2]       # 64 in + 64 outliers
    score_images = sum(SET_IMAGES[s] for s in SCORE_SETS)
    for run in ("baseline", "oe_tune"):
        assert g[f"score_cifar10_vae_{run}"].estimate == ["vae_score", score_images]
    rate = bench["cases"]["vae_train"][FAST]["images_per_s"]
    assert estimate_s(g["cifar10_vae_baseline"], bench) == pytest.approx(200 * 50000 / rate)
