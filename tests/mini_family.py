"""Shared checks of the mini-study's density families at CI size (``--preset tiny --models ...``)."""
from __future__ import annotations

import json
from pathlib import Path

from study.mini import study as mini_study
from study.mini.presets import FAMILIES


def run_tiny_study(tmp_path: Path, monkeypatch, *models: str) -> tuple[Path, str]:
    """Run the tiny study with ``models`` on the CPU; its folder and ``report.md``."""
    monkeypatch.setenv("OE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    assert mini_study.main(["--preset", "tiny", "--models", *models, "--out", str(out), "--no-progress",
                            "--device", "cpu"]) == 0
    return out, (out / "report.md").read_text()


def check_family_report(out: Path, report: str, family: str) -> None:
    """A family other than PixelCNN++ in the report: findings (a), (a, after OE) and (b) under its name, its
    likelihood study of both runs, and every embedded figure on disk."""
    fam = FAMILIES[family]
    for finding in (f"**(a, {fam.display}) Does the baseline {fam.display} find",
                    f"**(a, {fam.display}, after OE) Does OE fix it?**",
                    f"**(b) Does OE raise the mean AUROC of the {fam.display} (bpd)?**"):
        assert finding in report, finding
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert f"eval/{fam.folder}/bpd_histogram.png" in images and all((out / p).is_file() for p in images)
    likelihood = json.loads((out / "eval" / fam.folder / "likelihood.json").read_text())
    assert [r["model"] for r in likelihood["rows"]] == [f"Baseline ({fam.label})", f"OE ({fam.label}_oe)"]
