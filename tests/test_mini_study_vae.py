"""The mini-study with the VAE family (``--models vae``): training, OE, Likelihood Regret on the first images of each
set, the bound gap, and the findings the report states from them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.results import Evaluation
from study.mini import report as mini_report
from study.mini import study as mini_study
from study.mini_benchmark.versions import get_benchmark

from tests.mini_family import check_family_report, run_tiny_study

TINY = mini_study.PRESETS["tiny"]


def _steps(preset: str = "tiny") -> dict[str, mini_study.Step]:
    cfg = mini_study.StudyConfig(out="/r", preset=preset, models=["vae"])
    study = mini_study.Study(cfg, mini_study.PRESETS[preset], Path("/r"))
    return {s.name: s for s in mini_study.study_steps(study, get_benchmark("v2"), ["vae"])}


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_regret_and_the_bound_gap_run_on_the_first_images_of_every_set(preset):
    p, bench = mini_study.PRESETS[preset], get_benchmark("v2")
    steps = _steps(preset)
    regret = steps[f"Likelihood Regret (VAE, first {p.vae_regret_images} images per set)"]
    assert regret.module == "analysis.evaluate" and regret.values["detectors"] == ["bpd", "likelihood_regret"]
    assert regret.values["ckpt"] == ["vae=/r/vae", "vae_oe=/r/vae_oe"]
    n = f"n={p.vae_regret_images}"
    assert regret.values["id_dataset"].endswith(n) and len(regret.values["ood"]) == len(bench.ood_sets)
    assert all(s.endswith(n) for s in regret.values["ood"]) and regret.values["out"] == "/r/eval/detectors_vae"
    table = steps["Likelihood Regret table (VAE)"].values
    assert table["results"] == ["/r/eval/detectors_vae/results.json"]
    assert "Likelihood Regret+OE (VAE)=vae_oe:likelihood_regret" in table["columns"]
    gap = steps[f"bound gap (VAE, first {p.vae_gap_images} images per set)"].values
    assert (gap["baseline"], gap["oe"], gap["k_large"], gap["limit"]) == ("/r/vae", "/r/vae_oe", p.vae_gap_k,
                                                                          p.vae_gap_images)
    assert "k_small" not in gap   # the loose bound is the tool's default, the ELBO (K = 1)
    assert p.vae_regret_images <= 100 and p.vae_gap_images <= 200   # both are costly: a few hundred images at most
    # no other family gets these steps
    others = mini_study.study_steps(mini_study.Study(mini_study.StudyConfig(out="/r", preset=preset), p, Path("/r")),
                                    bench, ["pixelcnn", "glow", "diffusion"])
    assert not [s for s in others if s.module == "analysis.bound_gap" or "Regret" in s.name]


def _gap(changes: list[tuple[float, float]]) -> dict:
    sets = [{"set": "id", "in_distribution": True}]
    sets += [{"set": f"s{i}", "in_distribution": False, "oe_change_small": a, "oe_change_large": b}
             for i, (a, b) in enumerate(changes)]
    return {"settings": {"k_small": 1, "k_large": 64, "limit": 100}, "sets": sets}


def test_the_bound_gap_finding_counts_the_sets_by_where_the_rise_went():
    # the tight bound moved with the ELBO (share 0.05), did not (share 0.75), no rise
    text = mini_report._gap_finding(_gap([(0.2, 0.19), (0.2, 0.05), (-0.1, 0.0)]), "VAE")
    assert text.startswith("**(d, VAE) Did OE lower the outliers' likelihood, or only loosen the bound on them?** "
                           "Split: OE raised the outliers' L_1 bits/dim relative to the inliers' on 2 of 3 OOD sets; "
                           "on 1 of them the tight bound L_64 moved with it")
    assert "on 1 more than half of the rise is in the gap" in text
    assert "Mainly the bound gap:" in mini_report._gap_finding(_gap([(0.2, 0.05), (0.1, 0.02), (0.3, 0.29)]), "VAE")
    assert "Mainly the likelihood:" in mini_report._gap_finding(_gap([(0.2, 0.15), (0.1, 0.02), (0.3, 0.29)]), "VAE")
    assert "No rise to explain:" in mini_report._gap_finding(_gap([(-0.2, 0.1), (0.0, 0.0)]), "VAE")


@pytest.mark.slow
def test_mini_study_trains_oe_tunes_and_reports_the_vae(tmp_path, monkeypatch):
    out, report = run_tiny_study(tmp_path, monkeypatch, "vae")
    check_family_report(out, report, "vae")
    assert "| OOD set | MSP | MSP+OE | BPP (VAE) | BPP+OE (VAE) |" in report
    base, oe = (json.loads((out / run / "config.json").read_text()) for run in ("vae", "vae_oe"))
    assert base["arch"] == oe["arch"] == "vae" and oe["init"] == str(out / "vae")
    assert (base["vae_hidden"], base["vae_latent"], base["vae_iw_samples"]) == (TINY.vae_hidden, TINY.vae_latent, 1)

    # Likelihood Regret beside bits/dim on the same first images of each set
    ev = Evaluation.load(out / "eval" / "detectors_vae" / "results.json")
    assert ev.settings["id_dataset"]["options"]["n"] == TINY.vae_regret_images
    assert ("| OOD set | BPP (VAE) | BPP+OE (VAE) | Likelihood Regret (VAE) | Likelihood Regret+OE (VAE) |"
            in report)
    auroc = {(m, d): 100 * mini_report.mean_auroc(ev, m, d) for m in ("vae", "vae_oe")
             for d in ("bpd", "likelihood_regret")}
    assert all(np.isfinite(v) for v in auroc.values())
    assert (f"Likelihood Regret {auroc[('vae', 'likelihood_regret')]:.1f}% against bits/dim "
            f"{auroc[('vae', 'bpd')]:.1f}%; after OE {auroc[('vae_oe', 'likelihood_regret')]:.1f}% against "
            f"{auroc[('vae_oe', 'bpd')]:.1f}%.") in report
    assert "**(c, VAE) Does Likelihood Regret separate the outliers better than the VAE's bits/dim?** " + (
        "Yes" if auroc[("vae", "likelihood_regret")] > auroc[("vae", "bpd")] else "No") in report

    # the bound gap: its table in the report, and finding (d) counting analysis.bound_gap's own verdicts
    gap = json.loads((out / "eval" / "bound_gap_vae" / "bound_gap.json").read_text())
    assert (gap["settings"]["k_small"], gap["settings"]["k_large"], gap["settings"]["limit"]) == (
        1, TINY.vae_gap_k, TINY.vae_gap_images)
    assert len(gap["sets"]) == 1 + len(get_benchmark("v2").ood_sets)
    assert f"### Bound gap: bits/dim under L_1 and L_{TINY.vae_gap_k}, before and after OE" in report
    lowered = sum("mainly lowered the outliers' likelihood" in f for f in gap["findings"])
    widened = sum("mainly widened the gap" in f for f in gap["findings"])
    assert (f"on {lowered} of them the tight bound L_{TINY.vae_gap_k} moved with it (the likelihood fell), on "
            f"{widened} more than half") in report
