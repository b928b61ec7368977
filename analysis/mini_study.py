"""``python -m analysis.mini_study``: the whole OE study, offline, on the built-in mini benchmark.

The main job of ``scripts/demo.sh``.  On the ``mini-*`` sets (thumbnails of photographs bundled with
scikit-image / scikit-learn / matplotlib; see :mod:`oe_core.data.mini`) it runs, in one process, exactly the
commands a user would type:

1. classifier baseline, then OE fine-tuning on ``mini-outliers``         (``python -m classifiers_oe.train``)
2. small PixelCNN++ baseline, then OE fine-tuning with the margin loss   (``python -m density_oe.train``)
3. MSP and bits-per-dim detectors before and after OE on the OOD suite   (``python -m analysis.evaluate``)
4. the comparison table, every figure, the digits-vs-photos likelihood study (``analysis.compare``,
   ``analysis.figures``, ``analysis.svhn_likelihood``)

and writes ``<out>/report.md`` with the tables and figures embedded, the findings stated from the measured
numbers, and the wall time and peak memory of every step.  Presets: ``default`` (about 10 minutes on a 2-core
CPU), ``full`` (about an hour: closer to convergence), ``tiny`` (a CI-sized run of the same code path).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from oe_core.config import help_field, parse_config, require, save_config
from oe_core.atomic import atomic_write_text
from oe_core.errors import cli_main
from oe_core.outputs import check_writable_folder


@dataclass(frozen=True)
class Preset:
    """Sizes of one mini-study run."""

    size: int                 # image side (pixels)
    n_test: int               # images per evaluated set (OOD sets are subsampled 1:5 per protocol trial)
    cls_epochs: int
    cls_oe_epochs: int
    cls_depth: int
    cls_width: int
    pcnn_epochs: int
    pcnn_oe_epochs: int
    pcnn_filters: int
    pcnn_resnet: int
    pcnn_mix: int
    pcnn_batch: int
    pcnn_ema: float           # EMA decay: the paper's 0.9995 averages over ~2000 steps, more than a mini run has
    limit_steps: int = 0      # cap on steps per epoch (0: full epochs)
    num_to_avg: int = 10


PRESETS: dict[str, Preset] = {
    "tiny": Preset(size=8, n_test=100, cls_epochs=1, cls_oe_epochs=1, cls_depth=10, cls_width=1,
                   pcnn_epochs=1, pcnn_oe_epochs=1, pcnn_filters=8, pcnn_resnet=1, pcnn_mix=2, pcnn_batch=32, pcnn_ema=0.9,
                   limit_steps=4, num_to_avg=2),
    "default": Preset(size=16, n_test=1000, cls_epochs=10, cls_oe_epochs=3, cls_depth=16,
                      cls_width=2, pcnn_epochs=8, pcnn_oe_epochs=1, pcnn_filters=32, pcnn_resnet=1, pcnn_mix=5,
                      pcnn_batch=32, pcnn_ema=0.995),
    "full": Preset(size=16, n_test=1000, cls_epochs=20, cls_oe_epochs=5, cls_depth=16,
                   cls_width=2, pcnn_epochs=35, pcnn_oe_epochs=2, pcnn_filters=48, pcnn_resnet=2, pcnn_mix=5,
                   pcnn_batch=32, pcnn_ema=0.999),
}

OOD_SETS = ("mini-svhn", "mini-svhn-saturated", "mini-textures", "mini-faces", "gaussian", "rademacher", "blobs")


@dataclass
class StudyConfig:
    """Run the offline mini OE study end to end and write a report."""

    out: str = help_field("runs/demo", "folder for every run, table, figure and report.md")
    preset: str = help_field("default", "default: ~10 min on a 2-core CPU; full: ~1 h, closer to convergence; "
                                         "tiny: seconds, for CI", choices=tuple(PRESETS))
    device: str = help_field("auto", "cpu, cuda or auto")
    seed: int = help_field(1, "seed of every training run (data order, augmentation, dropout, init)")
    threads: int = help_field(0, "torch CPU threads (0: PyTorch's default)")
    progress: bool = help_field(True, "show progress bars")
    fresh: bool = help_field(False, "retrain everything (default: finished runs in --out are reused, "
                                    "interrupted ones resumed)")

    def validate(self) -> None:
        require(self.threads >= 0, f"--threads must be >= 0, got {self.threads}")


@dataclass
class StepRecord:
    name: str
    command: str
    seconds: float
    peak_rss_mb: float


@dataclass
class Study:
    cfg: StudyConfig
    preset: Preset
    root: Path
    steps: list[StepRecord] = field(default_factory=list)

    def spec(self, name: str, split: Optional[str] = None) -> str:
        p = self.preset
        s = f"{name}:{split}" if split else name
        return f"{s},size={p.size},n={p.n_test}"

    def run(self, name: str, module: str, main: Callable[[Sequence[str]], object], argv: list[str]) -> None:
        command = f"python -m {module} " + " ".join(argv)
        print(f"\n=== [{len(self.steps) + 1}] {name}\n$ {command}", file=sys.stderr, flush=True)
        t0 = time.time()
        rc = main(argv)
        if rc not in (None, 0):
            raise SystemExit(f"step {name!r} failed with exit code {rc}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        self.steps.append(StepRecord(name, command, time.time() - t0, peak))


def _train_common(study: Study, out: str) -> list[str]:
    c = study.cfg
    argv = ["--out", out, "--device", c.device, "--seed", str(c.seed), "--num-workers", "0",
            "--image-size", str(study.preset.size)]
    if study.preset.limit_steps:
        argv += ["--limit-steps", str(study.preset.limit_steps)]
    if not c.progress:
        argv.append("--no-progress")
    if c.fresh:
        argv.append("--no-resume")
    return argv


def run_study(cfg: StudyConfig) -> Path:
    from classifiers_oe import train as cls_train
    from density_oe import train as pcnn_train

    from . import compare, evaluate, svhn_likelihood
    from .figures import __main__ as figures
    from .report import write_report

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    p = PRESETS[cfg.preset]
    root = check_writable_folder(cfg.out)
    save_config(cfg, root / "study_config.json")
    study = Study(cfg, p, root)
    t_start = time.time()
    runs = {k: str(root / k) for k in ("clf", "clf_oe", "pcnn", "pcnn_oe")}

    study.run("classifier baseline", "classifiers_oe.train", cls_train.main, [
        "--mode", "baseline", "--dataset", "mini-id", "--arch", "wrn", "--depth", str(p.cls_depth),
        "--widen-factor", str(p.cls_width), "--epochs", str(p.cls_epochs),
        *_train_common(study, runs["clf"])])
    study.run("classifier OE fine-tune", "classifiers_oe.train", cls_train.main, [
        "--mode", "oe_tune", "--init", runs["clf"], "--dataset", "mini-id", "--arch", "wrn",
        "--depth", str(p.cls_depth), "--widen-factor", str(p.cls_width), "--outliers", "mini-outliers",
        "--epochs", str(p.cls_oe_epochs), *_train_common(study, runs["clf_oe"])])
    pcnn_model = ["--nr-filters", str(p.pcnn_filters), "--nr-resnet", str(p.pcnn_resnet),
                  "--nr-logistic-mix", str(p.pcnn_mix), "--batch-size", str(p.pcnn_batch),
                  "--ema-decay", str(p.pcnn_ema)]
    study.run("PixelCNN++ baseline", "density_oe.train", pcnn_train.main, [
        "--mode", "baseline", "--dataset", "mini-id", "--epochs", str(p.pcnn_epochs), *pcnn_model,
        *_train_common(study, runs["pcnn"])])
    study.run("PixelCNN++ OE fine-tune", "density_oe.train", pcnn_train.main, [
        "--mode", "oe_tune", "--init", runs["pcnn"], "--dataset", "mini-id", "--outliers", "mini-outliers",
        "--epochs", str(p.pcnn_oe_epochs), *pcnn_model, *_train_common(study, runs["pcnn_oe"])])

    ev = root / "eval"
    study.run("OOD evaluation (reference protocol)", "analysis.evaluate", evaluate.main, [
        "--ckpt", f"clf={runs['clf']}", f"clf_oe={runs['clf_oe']}", f"pcnn={runs['pcnn']}",
        f"pcnn_oe={runs['pcnn_oe']}", "--detectors", "msp", "bpd", "--id-dataset", study.spec("mini-id", "test"),
        "--ood", *[study.spec(s) for s in OOD_SETS], "--num-to-avg", str(p.num_to_avg), "--device", cfg.device,
        "--out", str(ev), "--strict"])
    columns = ["MSP=clf:msp", "MSP+OE=clf_oe:msp", "BPP=pcnn:bpd", "BPP+OE=pcnn_oe:bpd"]
    study.run("comparison table", "analysis.compare", compare.main, [
        "--results", str(ev / "results.json"), "--columns", *columns, "--out", str(ev / "compare")])
    study.run("figures", "analysis.figures", figures.main, [
        "--results", str(ev / "results.json"), "--out", str(ev / "figures"),
        "--bars", "likelihood=pcnn:bpd", "likelihood+OE=pcnn_oe:bpd", "MSP=clf:msp", "MSP+OE=clf_oe:msp",
        "--runs", *[f"{k}={v}" for k, v in runs.items()]])
    study.run("digits-vs-photos likelihood study", "analysis.svhn_likelihood", svhn_likelihood.main, [
        "--results", str(ev / "results.json"), "--baseline", "pcnn", "--oe", "pcnn_oe", "--ood", "mini-svhn",
        "--out", str(ev / "likelihood")])
    total = time.time() - t_start
    report = write_report(root, cfg, p, study.steps, total)
    atomic_write_text(root / "timing.json", json.dumps(
        {"total_seconds": total, "peak_rss_mb": max(s.peak_rss_mb for s in study.steps),
         "steps": [asdict(s) for s in study.steps], "preset": asdict(p)}, indent=1) + "\n")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(StudyConfig, argv, prog="python -m analysis.mini_study")
    report = run_study(cfg)
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
