"""``python -m analysis.trajectory``: the AUROC-over-training trajectory of density models.

A density run trained with ``--track-ood SET`` (``python -m density_oe.train``, any ``--arch``) scores SET and
its test images with the evaluation weights at the end of every epoch, with fixed images and fixed random
draws, and records ``track_step``, ``test_bpd``, ``track_SET_bpd`` and ``track_SET_auroc`` in its
``metrics.json``.  This tool reads those rows from one or more runs and writes ``trajectory.md``/``.json`` (a
table: model, epoch, step, test bits/dim, SET bits/dim, AUROC) and ``trajectory.png``/``.pdf`` (AUROC against
training step and against test bits/dim).  Whether the likelihood's failure belongs to an undertrained model
or to the converged one shows as the curve's end: still below 50% once test bits/dim has stopped improving.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import OEError, cli_main
from oe_core.outputs import check_writable_folder


@dataclass
class TrajectoryConfig:
    """Tabulate and plot the bits/dim AUROC of an OOD set over the training of density runs."""

    runs: list[str] = help_field([], "LABEL=RUN_FOLDER of each density run trained with --track-ood")
    ood: str = help_field("mini-svhn", "the tracked OOD set (as passed to --track-ood)")
    out: str = help_field("trajectory", "folder for trajectory.{md,json,png,pdf}")

    def validate(self) -> None:
        require(bool(self.runs), "--runs: name at least one LABEL=RUN_FOLDER")
        for r in self.runs:
            require("=" in r and r.split("=", 1)[0] and r.split("=", 1)[1], f"--runs: {r!r} is not LABEL=RUN_FOLDER")


def read_trajectory(run: str | Path, ood: str) -> list[dict]:
    """The run's tracked rows: ``epoch``, ``step``, ``test_bpd``, ``ood_bpd``, ``auroc`` (fraction)."""
    path = Path(run) / "metrics.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise OEError(f"no readable training history at {str(path)!r} ({e})") from e
    key = f"track_{ood}_auroc"
    out = [{"epoch": r["epoch"], "step": r["track_step"], "test_bpd": r["test_bpd"],
            "ood_bpd": r[f"track_{ood}_bpd"], "auroc": r[key]} for r in rows if key in r]
    if not out:
        raise OEError(f"{str(path)!r} has no {key!r}: train the run with --track-ood {ood}")
    return out


def trajectory_table(curves: dict[str, list[dict]], ood: str) -> str:
    lines = [f"| model | epoch | step | test bits/dim | {ood} bits/dim | AUROC of bits/dim (%) |",
             "|---|---|---|---|---|---|"]
    for label, rows in curves.items():
        lines += [f"| {label} | {r['epoch']} | {r['step']} | {r['test_bpd']:.3f} | {r['ood_bpd']:.3f} | "
                  f"{100 * r['auroc']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def run_trajectory(cfg: TrajectoryConfig) -> Path:
    from .figures import save_figure
    from .figures.trajectory import trajectory_figure
    out = check_writable_folder(cfg.out)
    curves = {label: read_trajectory(folder, cfg.ood) for label, folder in (r.split("=", 1) for r in cfg.runs)}
    atomic_write_text(out / "trajectory.md", trajectory_table(curves, cfg.ood))
    atomic_write_text(out / "trajectory.json", json.dumps({"ood": cfg.ood, "curves": curves}, indent=1) + "\n")
    save_figure(trajectory_figure(curves, cfg.ood), out / "trajectory")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(TrajectoryConfig, argv, prog="python -m analysis.trajectory")
    print(f"wrote {run_trajectory(cfg) / 'trajectory.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
