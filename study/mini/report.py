"""The mini-study report: ``report.md`` with the tables and figures embedded and the findings stated from the
measured numbers (never tuned to agree with the paper: a finding that does not show is reported as such)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from analysis.results import Evaluation
from oe_core.atomic import atomic_write_text
from oe_core.run import cpu_model
from study.mini_benchmark.versions import DEFAULT_BENCHMARK, get_benchmark

from .presets import FAMILIES


def mean_metric(ev: Evaluation, model: str, detector: str, metric: str) -> float:
    """Mean of ``metric`` (``auroc``, ``fpr95``, ...) over the model's OOD sets (NaN when the evaluation has no
    such model or metric)."""
    values = [r.protocol["mean"].get(metric) for r in ev.groups().get((model, detector), []) if r.ok]
    return float(np.mean(values)) if values and None not in values else float("nan")


def mean_auroc(ev: Evaluation, model: str, detector: str) -> float:
    """Mean AUROC over the model's OOD sets (NaN when the evaluation has no such model)."""
    return mean_metric(ev, model, detector, "auroc")


def classifier_accuracy(root: Optional[Path], run: str) -> float:
    """Final test accuracy (%) of the classifier run ``root/run`` from its metrics.json (NaN when absent)."""
    p = root / run / "metrics.json" if root is not None else None
    if p is None or not p.exists():
        return float("nan")
    last = json.loads(p.read_text())[-1]
    return 100.0 - float(last["test_error"]) if "test_error" in last else float("nan")


def set_auroc(ev: Evaluation, model: str, detector: str, dataset: str) -> float:
    for r in ev.groups().get((model, detector), []):
        if r.ok and r.ood.get("name") == dataset:
            return r.mean("auroc")
    return float("nan")


# as the mini-study runs them: family -> (run label, display name)
FAMILY_LABELS = {name: (f.label, f.display) for name, f in FAMILIES.items()}


NALISNICK = {"Glow": "Glow", "VAE": "VAEs"}  # families Nalisnick et al. (2019) show the failure for, as they name them


def _both_or_part(by_mean: bool, by_rank: bool) -> str:
    """Yes when the mean bits/dim and the ranking (AUROC against chance) agree that it holds, No when both say it
    does not, Partly when they disagree (a tail of very likely or unlikely images moves the mean, not the ranks)."""
    return "Yes" if by_mean and by_rank else "No" if not (by_mean or by_rank) else "Partly"


def _split_note(what: str, by_rank: bool, side: str) -> str:
    """What a Partly answer adds: which of the two measures shows ``what`` (``side``: the AUROC's side of chance
    when it shows by rank)."""
    if by_rank:
        return (f"By rank {what} shows (AUROC {side} chance), by the mean bits/dim it does not: a tail of outlying "
                f"images moves the mean, not the ranks.")
    return (f"By the mean bits/dim {what} shows, by rank it does not (AUROC not {side} chance): a tail of outlying "
            f"images moves the mean, not the ranks.")


def _likelihood_findings(likelihood: dict, label: str, name: str, paper: bool) -> list[str]:
    """(a) and (a, after OE) for one density family: does the failure show, does OE fix it."""
    rows = {r["model"].split("(")[-1].rstrip(")"): r for r in likelihood["rows"]}
    base, oe = rows.get(label), rows.get(f"{label}_oe")
    tag = "" if paper else f", {name}"
    out = []
    if base:
        by_mean, by_rank = base["ood_mean_bpd"] < base["id_mean_bpd"], base["auroc_bpd"] < 0.5
        answer = _both_or_part(by_mean, by_rank)
        out.append(
            f"**(a{tag}) Does the baseline {'density model' if paper else name} find the SVHN-like digits more "
            f"likely than its own test images?** {answer}: mean {base['ood_mean_bpd']:.3f} "
            f"bits/dim on mini-svhn vs {base['id_mean_bpd']:.3f} on the in-distribution test set; "
            f"{100 * base['ood_more_likely_than_median_id']:.1f}% of the digits are more likely than the median "
            f"test image; AUROC of bpd as the OOD score {100 * base['auroc_bpd']:.1f}% "
            f"({'below' if by_rank else 'above'} chance). "
            + (("This is the paper's CIFAR-10 vs SVHN failure (SVHN 2.98 vs CIFAR-10 3.06 bpd)." if paper else
                f"This is the failure Nalisnick et al. (2019) report for {NALISNICK[name]} on CIFAR-10 vs SVHN."
                if name in NALISNICK else "This is the CIFAR-10 vs SVHN failure Nalisnick et al. (2019) report "
                f"for PixelCNN, Glow and VAEs, here for the {name}.")
               if answer == "Yes" else
               "The failure does not show at this scale in this run." if answer == "No" else
               _split_note("the failure", by_rank, "below")))
    if base and oe:
        by_mean, by_rank = oe["ood_mean_bpd"] > oe["id_mean_bpd"], oe["auroc_bpd"] > 0.5
        answer = _both_or_part(by_mean, by_rank)
        out.append(
            f"**(a{tag}, after OE) Does OE fix it?** {answer}: after OE fine-tuning mean "
            f"{oe['ood_mean_bpd']:.3f} bits/dim on mini-svhn vs {oe['id_mean_bpd']:.3f} on the in-distribution test set; "
            f"AUROC {100 * base['auroc_bpd']:.1f}% -> {100 * oe['auroc_bpd']:.1f}%"
            + (" (paper: SVHN AUROC 15.8% -> 75.8%, SVHN bpd 2.98 -> 3.43)." if paper else
               f" (the same loss, margin and outliers as for PixelCNN++; no published number for {name}).")
            + ("" if answer != "Partly" else " " + _split_note("the fix", by_rank, "above")))
    return out


def findings(ev: Evaluation, likelihoods: dict[str, dict], root: Optional[Path] = None) -> list[str]:
    """Plain statements of what the run measured, for the report and the console.  ``likelihoods``: the
    likelihood study (``likelihood.json``) of each density family that ran (``pixelcnn``, ``glow``); ``root``:
    the study folder (the classifiers' test accuracies are read from its runs)."""
    out = []
    for family, likelihood in likelihoods.items():
        label, name = FAMILY_LABELS[family]
        out += _likelihood_findings(likelihood, label, name, paper=family == "pixelcnn")
    checks = [("classifier (MSP)", "clf", "clf_oe", "msp")]
    checks += [("density model (bpd)" if f == "pixelcnn" else f"{FAMILY_LABELS[f][1]} (bpd)",
                FAMILY_LABELS[f][0], FAMILY_LABELS[f][0] + "_oe", "bpd") for f in likelihoods]
    for what, b, o, det in checks:
        a0, a1 = mean_auroc(ev, b, det), mean_auroc(ev, o, det)
        if np.isfinite(a0) and np.isfinite(a1):
            paper = {"clf": "MSP 89.3% -> 97.8%", "pcnn": "BPP 65.8% -> 83.7%"}.get(b)
            line = (f"**(b) Does OE raise the mean AUROC of the {what}?** {'Yes' if a1 > a0 else 'No'}: "
                    f"{100 * a0:.1f}% -> {100 * a1:.1f}% over {len(ev.group(b, det))} OOD sets"
                    + (f" (paper, CIFAR-10: {paper})." if paper else "."))
            f0, f1 = mean_metric(ev, b, det, "fpr95"), mean_metric(ev, o, det, "fpr95")
            if np.isfinite(f0) and np.isfinite(f1):
                line += (f" Mean FPR95 {100 * f0:.1f}% -> {100 * f1:.1f}% ({'lower' if f1 < f0 else 'not lower'}"
                         f" with OE{'; paper: 34.9% -> 9.5%' if b == 'clf' else ''}).")
            if b == "clf":
                acc0, acc1 = classifier_accuracy(root, b), classifier_accuracy(root, o)
                if np.isfinite(acc0) and np.isfinite(acc1):
                    line += f" Test accuracy {acc0:.1f}% -> {acc1:.1f}% (paper, CIFAR-10: 94.8% -> 94.7%)."
                worse = [r.ood.get("name") for r in ev.group(o, det) if r.ok and
                         r.mean("auroc") < set_auroc(ev, b, det, r.ood.get("name"))]
                if worse:
                    line += f" OE lowers the MSP AUROC on: {', '.join(worse)}."
            if a0 < 0.5:
                line += (" The baseline is below chance: it is more confident on these OOD sets than on its own "
                         "test images, so at this scale the baseline detector is weak.")
            out.append(line)
    for family in likelihoods:
        label, name = FAMILY_LABELS[family]
        sat = set_auroc(ev, label, "bpd", "mini-svhn-saturated")
        grey = set_auroc(ev, label, "bpd", "mini-svhn")
        if np.isfinite(sat) and np.isfinite(grey):
            out.append(f"**What drives the failure ({name}):** the same digit scenes in saturated colours get "
                       f"bpd-AUROC {100 * sat:.1f}% against {100 * grey:.1f}% for the SVHN-like (grey, "
                       "low-contrast, blurred) rendering: the likelihood tracks image complexity more than "
                       "semantics (Serra et al. 2020).")
    return out


def _regret_finding(ev: Evaluation, label: str, name: str, detector: str, title: str, images: int) -> str:
    """(c) for a family's own detector: does it separate the outliers better than the family's bits/dim, on the
    same images, before and after OE."""
    auroc = {(d, m): mean_auroc(ev, m, d) for d in ("bpd", detector) for m in (label, f"{label}_oe")}
    if not all(np.isfinite(v) for v in auroc.values()):
        return ""
    better = auroc[(detector, label)] > auroc[("bpd", label)]
    return (f"**(c, {name}) Does {title} separate the outliers better than the {name}'s bits/dim?** "
            f"{'Yes' if better else 'No'}: mean AUROC over {len(ev.group(label, detector))} OOD sets on the first "
            f"{images} images of each set, {title} {100 * auroc[(detector, label)]:.1f}% against bits/dim "
            f"{100 * auroc[('bpd', label)]:.1f}%; after OE {100 * auroc[(detector, f'{label}_oe')]:.1f}% against "
            f"{100 * auroc[('bpd', f'{label}_oe')]:.1f}%.")


def _gap_finding(gap: dict, name: str) -> str:
    """(d): did OE lower the outliers' likelihood, or mainly widen the gap between the ELBO and the tight bound
    (``analysis.bound_gap``'s verdict per OOD set, counted)."""
    from analysis.bound_gap import GAP_SHARE_MAINLY

    k_small, k_large = gap["settings"]["k_small"], gap["settings"]["k_large"]
    changes = [(e["oe_change_small"], e["oe_change_large"]) for e in gap["sets"] if not e["in_distribution"]]
    raised = [(d0, d1) for d0, d1 in changes if d0 > 0]
    widened = sum((d0 - d1) / d0 > GAP_SHARE_MAINLY for d0, d1 in raised)
    lowered = len(raised) - widened
    answer = ("No rise to explain" if not raised else "Mainly the likelihood" if lowered > widened else
              "Mainly the bound gap" if widened > lowered else "Split")
    return (f"**(d, {name}) Did OE lower the outliers' likelihood, or only loosen the bound on them?** {answer}: OE "
            f"raised the outliers' L_{k_small} bits/dim relative to the inliers' on {len(raised)} of {len(changes)} "
            f"OOD sets; on {lowered} of them the tight bound L_{k_large} moved with it (the likelihood fell), on "
            f"{widened} more than half of the rise is in the gap between the two bounds "
            f"(first {gap['settings']['limit']} images per set; per set: the bound-gap table below).")


def extra_findings(root: Path, families: Sequence[str], preset) -> list[str]:
    """(c) and (d) of the families with their own detectors or a bound gap (the VAE), from their outputs."""
    out = []
    for family in families:
        fam = FAMILIES[family]
        det_dir, gap_dir = fam.extra_folders(root / "eval")
        if fam.detectors and (det_dir / "results.json").is_file():
            ev = Evaluation.load(det_dir / "results.json")
            images = fam.runs(preset).detector_images
            out += [f for d, t in fam.detectors.items() if (f := _regret_finding(ev, fam.label, fam.display, d, t,
                                                                                   images))]
        if fam.bound_gap and (gap_dir / "bound_gap.json").is_file():
            out.append(_gap_finding(json.loads((gap_dir / "bound_gap.json").read_text()), fam.display))
    return out


def _extras_section(root: Path, families: Sequence[str]) -> list[str]:
    """The tables of the families' own detectors and their bound gaps."""
    lines = []
    for family in families:
        fam = FAMILIES[family]
        det_dir, gap_dir = fam.extra_folders(root / "eval")
        if fam.detectors and (det_dir / "compare" / "compare.md").is_file():
            titles = ", ".join(fam.detectors.values())
            lines += [f"## {titles} beside the {fam.display}'s bits/dim", "",
                      f"On the first images of each set only ({titles} re-optimises per image: docs/vae.md); the "
                      "bits/dim columns are scored on the same images.", "",
                      (det_dir / "compare" / "compare.md").read_text().strip(), ""]
        if fam.bound_gap and (gap_dir / "bound_gap.md").is_file():
            lines += [f"## Did OE move the {fam.display}'s likelihood or its bound? The bound gap", "",
                      "The OE loss pushes a bound on the outliers' likelihood down; a VAE can do that by making its "
                      "encoder worse on them. Each model scores every set with the ELBO and with a tight "
                      "importance-weighted bound (`analysis.bound_gap`).", "",
                      (gap_dir / "bound_gap.md").read_text().strip(), ""]
    return lines


def model_rows(root: Path) -> list[str]:
    """One line per trained model: its final test metrics from the run's metrics.json."""
    lines = ["| run | epochs | final test metrics |", "|---|---|---|"]
    for run in ("clf", "clf_oe", *(x for label, _ in FAMILY_LABELS.values() for x in (label, f"{label}_oe"))):
        p = root / run / "metrics.json"
        if not p.exists():
            continue
        last = json.loads(p.read_text())[-1]
        shown = {k: v for k, v in last.items() if k.startswith("test")}
        lines.append(f"| `{run}` | {last['epoch']} | " + ", ".join(
            f"{k} {v:.4g}" for k, v in shown.items()) + " |")
    return lines


def _embed(folder: Path, root: Path) -> list[str]:
    """Markdown image lines for every PNG of ``folder`` (paths relative to the report)."""
    lines = []
    for png in sorted(folder.glob("*.png")):
        lines.append(f"![{png.stem}]({png.relative_to(root).as_posix()})")
    return lines


def _trajectory_section(folder: Path, root: Path) -> list[str]:
    """The AUROC-over-training table and figure (``analysis.trajectory``), when the study wrote them."""
    if not (folder / "trajectory.md").is_file():
        return []
    return ["## Does the failure survive training? The digits' bits/dim AUROC at every epoch of the baseline", "",
            "Each density baseline scored its test images and the first images of `mini-svhn` with its evaluation "
            "weights at the end of every epoch (fixed images, fixed random draws). Below 50%: the digits look more "
            "likely than the test images. A failure that belongs to the converged model stays below 50% once the "
            "test bits/dim stops improving.", "", (folder / "trajectory.md").read_text().strip(), "",
            *_embed(folder, root), ""]


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def write_report(root: Path, cfg, preset, steps: Sequence, total_seconds: float,
                 families: Sequence[str] = ("pixelcnn",), amp: str = "none") -> Path:
    ev_dir = root / "eval"
    ev = Evaluation.load(ev_dir / "results.json")
    folders = {f: ev_dir / FAMILIES[f].folder for f in families}
    likelihoods = {f: json.loads((d / "likelihood.json").read_text()) for f, d in folders.items()}
    found = findings(ev, likelihoods, root) + extra_findings(root, families, preset)
    sections = []
    for f, d in folders.items():
        heading = [f"**{FAMILY_LABELS[f][1]}**", ""] if len(folders) > 1 else []
        sections += [*heading, (d / "likelihood.md").read_text().strip(), "", *_embed(d, root), ""]
    peak = max(s.peak_rss_mb for s in steps)
    bench = get_benchmark(getattr(cfg, "benchmark", DEFAULT_BENCHMARK))
    md = [
        "# OE mini-study report",
        "",
        f"Preset **{cfg.preset}** ({preset.size}x{preset.size} images), seed {cfg.seed}; total wall time "
        f"**{total_seconds / 60:.1f} min**, peak memory **{peak / 1024:.2f} GB**; training precision "
        f"**{'bf16 autocast' if amp == 'bf16' else 'float32'}** (likelihoods in float32) "
        f"({cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, 1-minute load average "
        f"{_load()} at the end).",
        "",
        f"Mini benchmark **{bench.name}**. Everything here is built offline from images that ship inside "
        f"installed packages or with the repository (see `python -m oe_core.data`): {bench.summary}; OE outliers "
        "`mini-outliers` = thumbnails of "
        "other pictures (three more pictures are held out as a validation OOD set, `mini-val-outliers`, on which "
        "the classifier's OE length was chosen: `python -m study.mini.select`); OOD sets = SVHN-like house numbers "
        "(`mini-svhn`, rendered after SVHN's statistics: near-grey colours with small tints, low contrast "
        "0.15-0.35, slight blur), the same scenes in saturated colours (`mini-svhn-saturated`), textures, faces "
        "and the paper's Gaussian / Rademacher / Blobs noise. Metrics follow the reference protocol: OOD is the "
        f"positive class, {ev.settings.get('num_to_avg')} trials of 1:{ev.settings.get('ratio')} OOD subsamples.",
        "",
        "## Findings",
        "",
        *[f"- {f}" for f in found],
        "",
        "## Trained models",
        "",
        *model_rows(root),
        "",
        "(`test_error` in %, `test_bpd` in bits per dimension with each run's scoring weights: the baseline's EMA, the OE fine-tune's trained weights, as its `config.json` `eval_weights` records.)",
        "",
        "## Detectors side by side (likelihood vs MSP, before and after OE)",
        "",
        (ev_dir / "compare" / "compare.md").read_text().strip(),
        "",
        "## Likelihood of the SVHN-like digits vs the in-distribution photos (the paper's Figure 2)",
        "",
        *sections,
        *_trajectory_section(ev_dir / "trajectory", root),
        *_extras_section(root, families),
        "## Figures",
        "",
        *_embed(ev_dir / "figures", root),
        "",
        "## Steps, wall time and memory",
        "",
        "| step | command | wall time (s) | CPU time (s) | peak RSS so far (MB) |",
        "|---|---|---|---|---|",
        *[f"| {s.name} | `{s.command}` | {s.seconds:.1f} | {s.cpu_seconds:.1f} | {s.peak_rss_mb:.0f} |"
          for s in steps],
        "",
        "Full per-set results (mean and std over trials, every metric): `eval/results.{md,csv,json,tex}`. "
        "Regenerate every table and figure from the score cache: `scripts/figures.sh " + str(ev_dir) + "`.",
        "",
        "Preset: `" + json.dumps(asdict(preset)) + "`",
        "",
    ]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(md))
    return path
