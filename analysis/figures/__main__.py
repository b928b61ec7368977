"""``python -m analysis.figures``: every figure of an evaluation, rendered from its score cache.

For each (model, detector) of ``--results``: ID-vs-OOD score histograms (``hist_<model>_<detector>``) and ROC
curves (``roc_<model>_<detector>``); one per-set AUROC bar chart over all of them or the ``--bars`` series
(``auroc_bars``); training curves of ``--runs`` (``training_curves``).  PNG and PDF each (``--formats``),
plus ``figures.md`` listing them with captions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config
from oe_core.detectors import DETECTORS, get_detector
from oe_core.errors import ConfigError, cli_main
from oe_core.outputs import check_writable_folder

from ..datasets import DatasetSpec
from ..regenerate import absolute_pairs, record_config
from ..results import Evaluation
from ..cached_scores import stored_scores
from . import auroc_bars, read_metrics_csv, roc_figure, save_figure, score_histograms, training_curves
from .style import DPI, FORMATS

SUPPORTED_FORMATS = ("png", "pdf", "svg")


@dataclass
class FiguresConfig:
    """Render score histograms, ROC curves, AUROC bars and training curves from the score cache."""

    results: str = help_field("runs/evaluate/results.json", "results.json of analysis.evaluate")
    out: str = help_field("", "output folder (default: figures/ beside the results file)")
    cache_dir: str = help_field("", "score cache (default: the one the results file names)")
    bars: list[str] = help_field([], "series of the AUROC bar chart as NAME=LABEL:DETECTOR, e.g. "
                                     "'likelihood=dens:bpd' 'MSP=clf:msp' (default: every model/detector)")
    runs: list[str] = help_field([], "training runs for the curves as LABEL=RUN_FOLDER (reads metrics.csv)")
    bins: int = help_field(40, "histogram bins")
    formats: list[str] = help_field(list(FORMATS), "file formats to write (png, pdf, svg)")
    dpi: int = help_field(DPI, "resolution of raster formats (PNG)")


def _pairs(specs: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        name, eq, value = spec.partition("=")
        if not eq or not name or not value:
            raise ConfigError(f"--{what} {spec!r}: expected NAME=VALUE")
        out.append((name, value))
    return out


def render_figures(cfg: FiguresConfig) -> list[tuple[Path, str]]:
    """Write every figure; returns (PNG path, caption) per figure."""
    out = check_writable_folder(Path(cfg.out) if cfg.out else Path(cfg.results).parent / "figures")
    ev = Evaluation.load(cfg.results)
    id_name = DatasetSpec.from_dict(ev.settings["id_dataset"]).display
    made: list[tuple[Path, str]] = []

    def save(fig, stem: str, caption: str) -> None:
        made.append((save_figure(fig, out / stem, cfg.formats, cfg.dpi)[0], caption))

    for model, detector in ev.groups():
        g = stored_scores(ev, cfg.results, model, detector, cfg.cache_dir or None)
        if not g.ood:
            continue
        units = get_detector(detector).units if detector in DETECTORS else "score"
        title = f"{model} / {detector}"
        save(score_histograms(g.id_scores, g.ood, id_name=id_name, units=units, title=title, bins=cfg.bins),
             f"hist_{model}_{detector}", f"{title}: {id_name} vs OOD score histograms")
        save(roc_figure(g.id_scores, g.ood, title=title), f"roc_{model}_{detector}", f"{title}: ROC curves")

    groups = ev.groups()
    series_specs = _pairs(cfg.bars, "bars") or [(f"{m} / {d}", f"{m}:{d}") for m, d in groups]
    series, sets = {}, []
    for name, ref in series_specs:
        label, _, det = ref.partition(":")
        rows = ev.group(label, det)
        series[name] = {r.display: (r.mean("auroc"), r.std("auroc")) for r in rows if r.ok}
        sets += [r.display for r in rows if r.ok and r.display not in sets]
    if any(series.values()):
        save(auroc_bars(series, sets), "auroc_bars", "AUROC per OOD set (mean ± std over trials)")

    runs = {label: read_metrics_csv(folder) for label, folder in _pairs(cfg.runs, "runs")}
    if runs:
        save(training_curves(runs), "training_curves", "training curves: " + ", ".join(runs))

    lines = ["# Figures", ""] + [f"![{cap}]({p.name})\n\n{cap}\n" for p, cap in made]
    atomic_write_text(out / "figures.md", "\n".join(lines))
    record_config(cfg, out, "analysis.figures", results=str(Path(cfg.results).resolve()),
                  runs=absolute_pairs(cfg.runs))
    return made


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(FiguresConfig, argv, prog="python -m analysis.figures", description=__doc__)
    if cfg.bins < 2 or cfg.dpi < 10:
        raise ConfigError(f"--bins must be >= 2 and --dpi >= 10, got {cfg.bins} and {cfg.dpi}")
    bad = [f for f in cfg.formats if f not in SUPPORTED_FORMATS]
    if bad:
        raise ConfigError(f"--formats: {bad} not supported; choose from {', '.join(SUPPORTED_FORMATS)}")
    made = render_figures(cfg)
    for path, caption in made:
        print(f"{path}: {caption}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
