"""``python -m analysis.bound_gap``: did OE lower the outliers' likelihood, or only loosen the VAE's bound on them?

The OE margin loss pushes the *bound* ``L_K`` on the outliers' log-likelihood down.  A VAE can satisfy it by
making its encoder worse on outliers, which widens the gap ``log p(x) - ELBO`` while ``p(x)`` stays where it was
(``../shared/reference/vae-and-diffusion.md`` §6.1).  This tool scores the in-distribution test set and every
OOD set with the baseline VAE and the OE'd VAE, each twice: with the ELBO (``--k-small``, default 1) and with a
tight importance-weighted bound (``--k-large``, default 256), in bits/dim (:func:`density_oe.scorer.score_dataset`,
the fixed per-image evaluation draws of :mod:`density_oe.vae.bounds`).

For each OOD set, with ``sep_K = mean bpd_K(OOD set) - mean bpd_K(ID test)`` (how far the bound with ``K``
samples puts the outliers above the inliers) and ``Δ_K = sep_K(OE) - sep_K(baseline)`` (what OE added to it;
relative to the inliers, so that OE's fine-tuning steps improving the model as a whole do not count)::

    share in the gap = (Δ_small - Δ_large) / Δ_small

near 0: the tighter bound moved as much as the ELBO (OE lowered the likelihood itself); near 1: the ELBO moved
and the tighter bound did not (OE mainly widened the gap).  ``L_K`` with a poor encoder is itself loose and noisy,
so the table also reports both bounds' AUROCs (ID vs the set, bits/dim as the score) and the mean gaps.

Writes ``bound_gap.json`` (everything, per-image scores included) and ``bound_gap.md`` (the table and the
finding) to ``--out``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from density_oe.archs import arch_for_model
from density_oe.scorer import score_dataset
from density_oe.shapes import image_shape
from density_oe.weights import load_density_model
from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import ConfigError, cli_main
from oe_core.metrics import auroc
from oe_core.outputs import check_writable_folder
from oe_core.run import resolve_device

from .datasets import DatasetSpec, ood_suite
from .tables import Table

GAP_SHARE_MAINLY = 0.5   # "mainly the gap" when more than half of the ELBO's rise is not in the tighter bound


@dataclass
class BoundGapConfig:
    """Compare OE's effect on a VAE's ELBO with its effect on a tight importance-weighted bound."""

    baseline: str = help_field("", "the baseline VAE run folder or checkpoint")
    oe: str = help_field("", "the OE fine-tuned VAE run folder or checkpoint")
    id_dataset: str = help_field("cifar10", "in-distribution set as NAME[:SPLIT][,KEY=VALUE...] (split default: "
                                            "test)")
    ood: list[str] = help_field(["default"], "OOD sets as NAME[:SPLIT][,KEY=VALUE...] (default: the paper's suite "
                                             "for the ID set)")
    k_small: int = help_field(1, "samples of the loose bound (1: the ELBO)")
    k_large: int = help_field(256, "samples of the tight importance-weighted bound")
    limit: int = help_field(0, "score at most this many images per set (0: all)")
    data_root: str = help_field("", "folder holding the datasets")
    batch_size: int = help_field(64, "images per scoring batch")
    device: str = help_field("auto", "cpu, cuda, cuda:N or auto")
    out: str = help_field("runs/bound_gap", "output folder for bound_gap.json and bound_gap.md")
    progress: bool = help_field(True, "show progress bars")

    def validate(self) -> None:
        require(bool(self.baseline) and bool(self.oe), "--baseline and --oe must name the two VAE runs")
        require(self.k_small >= 1 and self.k_large >= 1, "--k-small and --k-large must be >= 1")
        require(self.k_large > self.k_small, f"--k-large ({self.k_large}) must exceed --k-small ({self.k_small})")
        require(self.limit >= 0 and self.batch_size >= 1, "--limit must be >= 0 and --batch-size >= 1")


def load_vae(path: str):
    model, cfg = load_density_model(path)
    if not hasattr(model, "iw_samples"):
        raise ConfigError(f"{path!r} holds a {arch_for_model(model).display}; the bound gap needs a VAE "
                          "(--arch vae)")
    return model, cfg


def bpd_at(model, dataset, k: int, cfg: BoundGapConfig, device: torch.device, desc: str) -> np.ndarray:
    """Per-image bits/dim of ``dataset`` under ``L_k``."""
    model.iw_samples = k
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False)
    return score_dataset(model, loader, device, progress=cfg.progress and bool(desc))


def finding(set_name: str, d_small: float, d_large: float, k_small: int, k_large: int) -> str:
    """One sentence on where OE's rise of ``set_name``'s bits/dim (relative to the inliers') went."""
    if d_small <= 0:
        return (f"{set_name}: OE did not raise the outliers' L_{k_small} bits/dim relative to the inliers' "
                f"(change {d_small:+.3f}); under L_{k_large} the change is {d_large:+.3f}.")
    share = (d_small - d_large) / d_small
    verdict = ("mainly widened the gap between the ELBO and the tighter bound" if share > GAP_SHARE_MAINLY else
               "mainly lowered the outliers' likelihood (the tighter bound moved with the ELBO)")
    return (f"{set_name}: OE raised the outliers' bits/dim relative to the inliers' by {d_small:+.3f} under "
            f"L_{k_small} and {d_large:+.3f} under L_{k_large}; {100 * share:.0f}% of the rise is in the bound gap, "
            f"so OE {verdict}.")


def run(cfg: BoundGapConfig) -> dict:
    out = check_writable_folder(cfg.out, "--out")
    device = resolve_device(cfg.device)
    models = {"baseline": load_vae(cfg.baseline), "oe": load_vae(cfg.oe)}
    id_spec = DatasetSpec.parse(cfg.id_dataset, default_split="test")
    specs = [id_spec, *ood_suite(id_spec, cfg.ood)]
    ks = (cfg.k_small, cfg.k_large)
    scores: dict = {}
    for spec in specs:
        ds = spec.open(cfg.data_root, cfg.limit)
        for label, (model, mcfg) in models.items():
            arch = arch_for_model(model)
            image_shape(ds, spec.text, arch.multiple(mcfg), arch.display)
            for k in ks:
                scores[(spec.text, label, k)] = bpd_at(model, ds, k, cfg, device, f"{label} {spec.text} K={k}")
    rows, findings, result_sets = [], [], []
    for spec in specs:
        is_id = spec is id_spec
        entry = {"set": spec.text, "in_distribution": is_id}
        for label in models:
            for k in ks:
                s = scores[(spec.text, label, k)]
                entry[f"{label}_bpd_k{k}"] = float(s.mean())
                if not is_id:
                    entry[f"{label}_auroc_k{k}"] = auroc(scores[(id_spec.text, label, k)], s)
            gap = scores[(spec.text, label, cfg.k_small)] - scores[(spec.text, label, cfg.k_large)]
            entry[f"{label}_gap"] = float(gap.mean())
            rows.append([spec.text + (" (ID)" if is_id else ""), label,
                         *[f"{entry[f'{label}_bpd_k{k}']:.4f}" for k in ks], f"{entry[f'{label}_gap']:.4f}",
                         *([f"{100 * entry[f'{label}_auroc_k{k}']:.1f}" for k in ks] if not is_id else ["", ""])])
        if not is_id:
            ids = result_sets[0]

            def sep(label: str, k: int) -> float:
                return entry[f"{label}_bpd_k{k}"] - ids[f"{label}_bpd_k{k}"]

            d = [sep("oe", k) - sep("baseline", k) for k in ks]
            entry["oe_change_small"], entry["oe_change_large"] = d
            findings.append(finding(spec.text, d[0], d[1], *ks))
        result_sets.append(entry)
    table = Table(f"Bound gap: bits/dim under L_{cfg.k_small} and L_{cfg.k_large}, before and after OE",
                  ["set", "model", f"bpd L_{cfg.k_small}", f"bpd L_{cfg.k_large}",
                   f"gap L_{cfg.k_small} - L_{cfg.k_large}", f"AUROC L_{cfg.k_small}", f"AUROC L_{cfg.k_large}"],
                  rows, notes=[f"gap: mean bits/dim under L_{cfg.k_small} minus under L_{cfg.k_large} (>= 0 in "
                               "expectation); AUROC in percent, ID test set vs the OOD set, bits/dim as the score"],
                  bold_last_row=False)
    result = {"settings": {"baseline": cfg.baseline, "oe": cfg.oe, "k_small": cfg.k_small, "k_large": cfg.k_large,
                           "limit": cfg.limit, "id_dataset": id_spec.text},
              "sets": result_sets, "findings": findings,
              "scores": {f"{s}|{m}|{k}": v.tolist() for (s, m, k), v in scores.items()}}
    atomic_write_text(out / "bound_gap.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "bound_gap.md", table.markdown() + "\n### Finding\n\n"
                      + "\n".join(f"- {f}" for f in findings) + "\n")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(BoundGapConfig, argv, prog="python -m analysis.bound_gap", description=__doc__)
    result = run(cfg)
    print("\n".join(result["findings"]))
    print(f"wrote {Path(cfg.out) / 'bound_gap.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
