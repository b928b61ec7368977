"""The mini-study with both density families (``--models pixelcnn glow``) at CI size."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from study.mini import study as mini_study
from oe_core.errors import cli_main


@pytest.mark.slow
def test_mini_study_trains_oe_tunes_and_reports_both_families(tmp_path, monkeypatch):
    monkeypatch.setenv("OE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    assert mini_study.main(["--preset", "tiny", "--models", "pixelcnn", "glow", "--out", str(out), "--no-progress",
                            "--device", "cpu"]) == 0
    report = (out / "report.md").read_text()
    for finding in ("**(a) Does the baseline density model", "**(a, Glow) Does the baseline Glow find",
                    "**(a, Glow, after OE) Does OE fix it?**", "**(b) Does OE raise the mean AUROC of the Glow (bpd)?**",
                    "**What drives the failure (Glow):**"):
        assert finding in report, finding
    assert "| OOD set | MSP | MSP+OE | BPP | BPP+OE | BPP (Glow) | BPP+OE (Glow) |" in report
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert "eval/likelihood_glow/bpd_histogram.png" in images and all((out / p).is_file() for p in images)
    likelihood = json.loads((out / "eval" / "likelihood_glow" / "likelihood.json").read_text())
    assert [r["model"] for r in likelihood["rows"]] == ["Baseline (glow)", "OE (glow_oe)"]
    for run in ("glow", "glow_oe"):
        cfg = json.loads((out / run / "config.json").read_text())
        assert cfg["arch"] == "glow" and cfg["glow_hidden"] == mini_study.PRESETS["tiny"].glow_hidden
    assert json.loads((out / "glow_oe" / "config.json").read_text())["init"] == str(out / "glow")
    results = json.loads((out / "eval" / "results.json").read_text())
    assert {"glow", "glow_oe"} <= {m["label"] for m in results["models"]}
    figures = (out / "eval" / "figures" / "figures.md").read_text()
    assert "hist_glow_oe_bpd.png" in figures
    assert len(json.loads((out / "timing.json").read_text())["steps"]) == 12  # 2 + 4 training runs, 6 analysis steps


def test_unknown_model_family_is_one_clear_error(tmp_path, capsys):
    assert cli_main(mini_study.main, ["--models", "pixelcnn", "nade", "--out", str(tmp_path)]) == 2
    assert "unknown density model family 'nade'" in capsys.readouterr().err
    # the full preset runs every density family the study has (a new family must be added to it), in FAMILIES' order
    assert mini_study.PRESETS["full"].models == tuple(mini_study.FAMILIES) == ("pixelcnn", "glow", "diffusion", "vae")
    assert mini_study.PRESETS["default"].models == ("pixelcnn",)
