"""The mini-study with the diffusion family (``--models diffusion``) at CI size."""
from __future__ import annotations

import json

import pytest

from study.mini import study as mini_study

from tests.mini_family import check_family_report, run_tiny_study


@pytest.mark.slow
def test_mini_study_trains_oe_tunes_and_reports_the_diffusion_family(tmp_path, monkeypatch):
    out, report = run_tiny_study(tmp_path, monkeypatch, "diffusion")
    check_family_report(out, report, "diffusion")
    assert "| OOD set | MSP | MSP+OE | BPP (Diffusion) | BPP+OE (Diffusion) |" in report
    tiny = mini_study.PRESETS["tiny"]
    base, oe = (json.loads((out / run / "config.json").read_text()) for run in ("diff", "diff_oe"))
    assert base["arch"] == oe["arch"] == "diffusion" and oe["init"] == str(out / "diff")
    assert base["diffusion_channels"] == tiny.diffusion_channels and base["diffusion_t_samples"] == 2
    assert (base["diffusion_train_t_samples"], oe["diffusion_train_t_samples"]) == (1, tiny.diffusion_oe_t_samples)
    assert "| `diff_oe` |" in report                                   # the model rows list the family's runs
    figures = (out / "eval" / "figures" / "figures.md").read_text()
    assert "hist_diff_oe_bpd.png" in figures
    # the AUROC-over-training trajectory of the baseline, from its own per-epoch tracking of the digits
    track = json.loads((out / "diff" / "metrics.json").read_text())[-1]
    assert "## Does the failure survive training?" in report
    assert (f"| Diffusion | 1 | {track['track_step']} | {track['test_bpd']:.3f} | "
            f"{track['track_mini-svhn_bpd']:.3f} | {100 * track['track_mini-svhn_auroc']:.1f} |") in report
