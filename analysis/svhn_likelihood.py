"""``python -m analysis.svhn_likelihood``: does the density model find the OOD set *more* likely than its own
test set?  The paper's CIFAR-10 vs SVHN study (its Figure 2), generic in the dataset names.

From the bits-per-dim scores of a baseline and an OE density model on the in-distribution test set and one
OOD set: the mean bpd table, the share of OOD images with lower bpd (= higher likelihood) than the median
in-distribution image, the AUROC of bpd as the OOD score, and the Figure-2 histograms.  The paper's mean bpd
(CIFAR-10 3.06 -> 3.08, SVHN 2.98 -> 3.43) is shown when the sets are CIFAR-10 and SVHN.  Writes
``likelihood.{md,tex,csv,json}`` and ``bpd_histogram.{png,pdf}``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from oe_core.cli_config import help_field, parse_config
from oe_core.errors import ConfigError, OEError, cli_main
from oe_core.outputs import check_writable_folder
from oe_core.metrics import as_scores, auroc
from oe_core.atomic import atomic_write_text

from .datasets import DatasetSpec
from .figures import bpd_histograms, save_figure
from .paper_numbers import PAPER_BPD
from .regenerate import record_config
from .results import Evaluation
from .cached_scores import stored_scores
from .tables import Table, write_tables


@dataclass(frozen=True)
class LikelihoodRow:
    model: str
    id_mean_bpd: float
    ood_mean_bpd: float
    id_median_bpd: float
    ood_more_likely_than_median_id: float  # share of OOD images with bpd < the median ID bpd
    auroc_bpd: float                       # AUROC of bpd as the OOD score (0.5 = chance, < 0.5: OOD looks *more* ID)
    paper_id_mean_bpd: Optional[float] = None
    paper_ood_mean_bpd: Optional[float] = None


def likelihood_row(model: str, id_bpd, ood_bpd, paper: Optional[dict[str, float]] = None,
                   id_name: str = "", ood_name: str = "") -> LikelihoodRow:
    """The study's numbers for one model from its per-image bpd on the ID test set and the OOD set."""
    id_bpd = as_scores(id_bpd, f"{model}: in-distribution bpd")
    ood_bpd = as_scores(ood_bpd, f"{model}: OOD bpd")
    median = float(np.median(id_bpd))
    paper = paper or {}
    return LikelihoodRow(model, float(np.mean(id_bpd)), float(np.mean(ood_bpd)), median,
                         float(np.mean(ood_bpd < median)), auroc(id_bpd, ood_bpd),
                         paper.get(id_name), paper.get(ood_name))


def likelihood_table(rows: list[LikelihoodRow], id_display: str, ood_display: str) -> Table:
    with_paper = any(r.paper_id_mean_bpd is not None for r in rows)

    def paper(v: Optional[float], ours: float) -> str:
        return f"{ours:.3f}" + (f" ({v:.2f})" if v is not None else "")

    body = [[r.model, paper(r.paper_id_mean_bpd, r.id_mean_bpd), paper(r.paper_ood_mean_bpd, r.ood_mean_bpd),
             f"{100 * r.ood_more_likely_than_median_id:.1f}", f"{100 * r.auroc_bpd:.1f}"] for r in rows]
    notes = [f"{ood_display} more likely: share of {ood_display} images with lower bits/dim (higher likelihood) "
             f"than the median {id_display} test image; AUROC < 50% means the likelihood ranks "
             f"{ood_display} as more in-distribution than {id_display}."]
    if with_paper:
        notes.append("ours (paper, Figure 2 mean bits per pixel).")
    return Table(f"Bits per dim: {id_display} test vs {ood_display}",
                 ["Model", f"{id_display} mean bpd", f"{ood_display} mean bpd",
                  f"{ood_display} more likely than median {id_display} (%)", "AUROC of bpd (%)"],
                 body, notes, bold_last_row=False)


@dataclass
class LikelihoodConfig:
    """Likelihood study: bits/dim of the ID test set vs one OOD set, baseline vs OE density model."""

    results: str = help_field("runs/evaluate/results.json", "results.json of analysis.evaluate (its score "
                                                            "cache holds the bpd scores)")
    baseline: str = help_field("", "label of the baseline density model in the results")
    oe: str = help_field("", "label of the OE fine-tuned density model in the results")
    ood: str = help_field("svhn", "the OOD set (dataset name as evaluated, e.g. svhn or mini-svhn)")
    detector: str = help_field("bpd", "the bits-per-dim detector")
    out: str = help_field("", "output folder (default: likelihood/ beside the results file)")
    bins: int = help_field(50, "histogram bins")


def run_study(cfg: LikelihoodConfig) -> tuple[list[LikelihoodRow], Table, dict[str, Path]]:
    """Compute the study from the score cache and write its tables and figure."""
    if not cfg.baseline or not cfg.oe:
        raise ConfigError("give --baseline LABEL and --oe LABEL (density models of the results)")
    out = check_writable_folder(Path(cfg.out) if cfg.out else Path(cfg.results).parent / "likelihood")
    ev = Evaluation.load(cfg.results)
    id_spec = DatasetSpec.from_dict(ev.settings["id_dataset"])
    panels, rows, ood_display = {}, [], cfg.ood
    for title, label in (("Baseline", cfg.baseline), ("OE", cfg.oe)):
        g = stored_scores(ev, cfg.results, label, cfg.detector)
        match = [d for d, name in g.ood_names.items() if name == cfg.ood]
        if not match:
            raise OEError(f"model {label!r} has no {cfg.detector} scores for OOD set {cfg.ood!r} in {cfg.results}; "
                          f"evaluated: {', '.join(g.ood_names.values()) or 'none'}")
        ood_display = match[0]
        paper = PAPER_BPD["baseline" if title == "Baseline" else "oe"] if cfg.detector == "bpd" else None
        rows.append(likelihood_row(f"{title} ({label})", g.id_scores, g.ood[ood_display], paper,
                                   id_spec.name, cfg.ood))
        panels[f"{title} ({label})"] = {f"{id_spec.display} test (ID)": g.id_scores,
                                        f"{ood_display} (OOD)": g.ood[ood_display]}
    table = likelihood_table(rows, id_spec.display, ood_display)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(asdict(rows[0])), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    paths = write_tables([table], out, "likelihood", buf.getvalue())
    paths["json"] = out / "likelihood.json"
    atomic_write_text(paths["json"], json.dumps({"id": id_spec.to_dict(), "ood": cfg.ood, "detector": cfg.detector,
                                                 "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    fig = bpd_histograms(panels, bins=cfg.bins,
                         title=f"Bits per dim: {id_spec.display} test vs {ood_display}, baseline and OE")
    paths["png"], paths["pdf"] = save_figure(fig, out / "bpd_histogram")
    record_config(cfg, out, "analysis.svhn_likelihood", results=str(Path(cfg.results).resolve()))
    return rows, table, paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(LikelihoodConfig, argv, prog="python -m analysis.svhn_likelihood", description=__doc__)
    _, table, paths = run_study(cfg)
    print(table.markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
