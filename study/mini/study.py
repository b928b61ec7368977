"""``python -m study.mini`` (old name: ``python -m analysis.mini_study``): the whole OE study, offline, on the mini
benchmark.

The main job of ``scripts/demo.sh``.  On the ``mini-*`` sets (:mod:`study.mini_benchmark`: thumbnails of photographs
bundled with scikit-image / scikit-learn / matplotlib) it runs, in one process, exactly the commands a user would
type (all built by :func:`study_steps`, from each tool's config dataclass with :func:`study.commands.run_argv`, as the
paper's graph builds its commands):

1. classifier baseline, then OE fine-tuning on ``mini-outliers``         (``python -m classifiers_oe.train``)
2. small PixelCNN++ baseline, then OE fine-tuning with the margin loss   (``python -m density_oe.train``);
   with ``--models pixelcnn glow diffusion vae`` (preset ``full``) also a small Glow, a diffusion model and a VAE,
   each trained and OE-tuned the same way
3. MSP and bits-per-dim detectors before and after OE on the OOD suite   (``python -m analysis.evaluate``)
4. the comparison table, every figure, the digits-vs-photos likelihood study, the AUROC-over-training trajectory
   (``analysis.compare``, ``analysis.figures``, ``analysis.svhn_likelihood``, ``analysis.trajectory``)
5. a family's own detectors (the VAE's Likelihood Regret) beside its bits/dim on the first images of each set,
   and its bound gap (``analysis.evaluate``, ``analysis.compare``, ``analysis.bound_gap``)

and writes ``<out>/report.md`` (:mod:`study.mini.report`) with the tables and figures embedded, the findings stated
from the measured numbers, and the wall time, CPU time and peak memory of every step.  Presets
(:mod:`study.mini.presets`): ``default`` (the main job), ``full`` (a larger PixelCNN++ trained longer, plus a small
Glow, a diffusion model and a VAE), ``tiny`` (a CI-sized run of the same code path); their measured times are in ``docs/results.md``.
``--amp auto`` (the default) trains in bf16 autocast where the CPU or GPU computes bf16 natively (likelihoods and
the density head stay float32; the report says which precision ran); evaluation scores in float32.
"""
from __future__ import annotations

import json
import resource
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config, require, save_config
from oe_core.errors import cli_main
from oe_core.outputs import check_writable_folder
from oe_core.run import cpu_model
from study.commands import run_argv
from study.mini_benchmark.versions import BENCHMARKS, DEFAULT_BENCHMARK, MiniBenchmark, get_benchmark

from .presets import FAMILIES, PRESETS, Preset

TRACKED_OOD = "mini-svhn"  # scored at every epoch of each density baseline: the AUROC-over-training trajectory


@dataclass
class StudyConfig:
    """Run the offline mini OE study end to end and write a report."""

    out: str = help_field("runs/demo", "folder for every run, table, figure and report.md")
    preset: str = help_field("default", "default: the main job; full: a larger PixelCNN++ trained longer plus a small "
                                         "Glow, a diffusion model and a VAE; tiny: seconds, for CI (measured times: docs/results.md)",
                             choices=tuple(PRESETS))
    benchmark: str = help_field(DEFAULT_BENCHMARK, "mini benchmark version: v2 (crops of 8 photos, one class each; "
                                "test crops of the training photos), v3 (43 photos in 3 scene classes, whole "
                                "photos held out for val and test) or v4 (323 photos in 8 classes, held out "
                                "likewise); see docs/mini_benchmark.md",
                                choices=tuple(BENCHMARKS))
    device: str = help_field("auto", "cpu, cuda or auto")
    amp: str = help_field("auto", "precision of the trainers (Glow always trains in float32): bf16 autocast "
                                  "(likelihoods and the density head stay "
                                  "float32), none (float32), or auto: bf16 where the device computes it natively "
                                  "(CPUs with AVX512_BF16 or AMX, bf16-capable GPUs), else float32",
                          choices=("auto", "bf16", "none"))
    seed: int = help_field(1, "seed of every training run (data order, augmentation, dropout, init)")
    threads: int = help_field(0, "torch CPU threads (0: PyTorch's default)")
    progress: bool = help_field(True, "show progress bars")
    fresh: bool = help_field(False, "retrain everything (default: finished runs in --out are reused, "
                                    "interrupted ones resumed)")
    models: list[str] = help_field([], "density model families to train, OE-tune and evaluate: pixelcnn, glow, "
                                       "diffusion, vae (the VAE adds Likelihood Regret on the first images of each "
                                       "set and the bound gap; empty: the preset's; default and tiny: pixelcnn; "
                                       "full: all four)")

    def validate(self) -> None:
        require(self.threads >= 0, f"--threads must be >= 0, got {self.threads}")
        for m in self.models:
            require(m in FAMILIES, f"--models: unknown density model family {m!r}; known: {', '.join(FAMILIES)}")
        require(len(set(self.models)) == len(self.models), f"--models names a family twice: {self.models}")


@dataclass
class StepRecord:
    name: str
    command: str
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0   # user + system CPU time of the process during the step


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def resolve_amp(amp: str, device: str) -> str:
    """``auto`` -> ``bf16`` where ``device`` computes bfloat16 natively, else ``none``."""
    from oe_core.run import native_bf16, resolve_device
    if amp != "auto":
        return amp
    return "bf16" if native_bf16(resolve_device(device)) else "none"


@dataclass
class Study:
    cfg: StudyConfig
    preset: Preset
    root: Path
    amp: str = "none"
    steps: list[StepRecord] = field(default_factory=list)

    def spec(self, name: str, split: Optional[str] = None, ood: bool = False, n: int = 0) -> str:
        """``name[:split],size=...,n=...``: the preset's images of a set (``n``: fewer)."""
        p = self.preset
        s = f"{name}:{split}" if split else name
        return f"{s},size={p.size},n={n or ((p.n_ood or p.n_test) if ood else p.n_test)}"

    def run(self, name: str, module: str, main: Callable[[Sequence[str]], object], argv: list[str]) -> None:
        command = f"python -m {module} " + shlex.join(argv)
        print(f"\n=== [{len(self.steps) + 1}] {name}\n$ {command}", file=sys.stderr, flush=True)
        t0, c0 = time.time(), cpu_seconds()
        rc = main(argv)
        if rc not in (None, 0):
            raise SystemExit(f"step {name!r} failed with exit code {rc}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        self.steps.append(StepRecord(name, command, time.time() - t0, peak, cpu_seconds() - c0))


def _run_settings(study: Study, out: str, limit_steps: int = 0, amp: Optional[str] = None,
                  classifier: bool = False) -> dict:
    """The config fields every training run of the study sets: its folder, the study's device, seed, precision,
    progress and resume, the preset's image size and step cap (``limit_steps``, if smaller, caps it further)."""
    c = study.cfg
    preset_limit = 0 if classifier and study.preset.cls_full_epochs else study.preset.limit_steps
    return {"out": out, "device": c.device, "seed": c.seed, "num_workers": 0, "image_size": study.preset.size,
            "amp": amp or study.amp, "limit_steps": min((x for x in (limit_steps, preset_limit) if x), default=0),
            "progress": c.progress, "resume": not c.fresh}


@dataclass(frozen=True)
class Step:
    """One command of the study: ``python -m MODULE ARGV``, the options that give ``values`` to the tool's config
    dataclass ``config`` (:func:`study.commands.run_argv`)."""

    name: str
    module: str
    config: type
    values: dict

    @property
    def argv(self) -> list[str]:
        return run_argv(self.config, self.values)


def run_folders(root: Path, families: Sequence[str]) -> dict[str, str]:
    """Run label -> its folder: both classifiers, then each density family's baseline and OE fine-tune."""
    labels = [FAMILIES[f].label for f in families]
    return {k: str(root / k) for k in ("clf", "clf_oe", *[x for lab in labels for x in (lab, f"{lab}_oe")])}


def study_steps(study: Study, bench: MiniBenchmark, families: Sequence[str]) -> list[Step]:
    """Every command of the study, in order: the only place the mini-study sets a tool's options, as values of the
    tool's config fields."""
    from analysis.compare import CompareConfig
    from analysis.evaluate import EvaluateConfig
    from analysis.figures.__main__ import FiguresConfig
    from analysis.svhn_likelihood import LikelihoodConfig
    from analysis.trajectory import TrajectoryConfig
    from classifiers_oe.config import ClassifierConfig
    from density_oe.config import DensityConfig

    p, cfg, root = study.preset, study.cfg, study.root
    runs = run_folders(root, families)
    wrn = {"dataset": bench.id_set, "arch": "wrn", "depth": p.cls_depth, "widen_factor": p.cls_width}
    steps = [Step("classifier baseline", "classifiers_oe.train", ClassifierConfig, {
        "mode": "baseline", **wrn, "epochs": p.cls_epochs, **_run_settings(study, runs["clf"], classifier=True)}),
        Step("classifier OE fine-tune", "classifiers_oe.train", ClassifierConfig, {
            "mode": "oe_tune", "init": runs["clf"], **wrn, "outliers": bench.outliers, "epochs": p.cls_oe_epochs,
            **({"lr": p.cls_oe_lr} if p.cls_oe_lr else {}),
            **_run_settings(study, runs["clf_oe"], classifier=True)})]
    for family in families:
        fam = FAMILIES[family]
        r = fam.runs(p)
        amp = study.amp if r.bf16 else "none"
        steps.append(Step(f"{fam.display} baseline", "density_oe.train", DensityConfig, {
            "arch": family, "mode": "baseline", "dataset": bench.id_set, **r.model, **r.baseline,
            "track_ood": [TRACKED_OOD], "track_images": p.n_ood or p.n_test,   # the trajectory
            **_run_settings(study, runs[fam.label], 0, amp)}))
        steps.append(Step(f"{fam.display} OE fine-tune", "density_oe.train", DensityConfig, {
            "arch": family, "mode": "oe_tune", "init": runs[fam.label], "dataset": bench.id_set,
            "outliers": bench.outliers, **r.model, **r.oe_tune,
            **_run_settings(study, runs[f"{fam.label}_oe"], r.oe_steps, amp)}))

    ev = root / "eval"
    steps.append(Step("OOD evaluation (reference protocol)", "analysis.evaluate", EvaluateConfig, {
        "ckpt": [f"{k}={v}" for k, v in runs.items()], "detectors": ["msp", "bpd"],
        "id_dataset": study.spec(bench.id_set, "test"), "ood": [study.spec(s, ood=True) for s in bench.ood_sets],
        "num_to_avg": p.num_to_avg, "device": cfg.device, "out": str(ev), "strict": True}))
    columns, bars = ["MSP=clf:msp", "MSP+OE=clf_oe:msp"], []
    for family in families:  # PixelCNN++ keeps the paper's names; other families are named in brackets
        label, display = FAMILIES[family].label, FAMILIES[family].display
        suffix = "" if family == "pixelcnn" else f" ({display})"
        columns += [f"BPP{suffix}={label}:bpd", f"BPP+OE{suffix}={label}_oe:bpd"]
        name = "likelihood" if family == "pixelcnn" else display
        bars += [f"{name}={label}:bpd", f"{name}+OE={label}_oe:bpd"]
    bars += ["MSP=clf:msp", "MSP+OE=clf_oe:msp"]
    results = str(ev / "results.json")
    steps.append(Step("comparison table", "analysis.compare", CompareConfig, {
        "results": [results], "columns": columns, "out": str(ev / "compare")}))
    steps.append(Step("figures", "analysis.figures", FiguresConfig, {
        "results": results, "out": str(ev / "figures"), "bars": bars,
        "runs": [f"{k}={v}" for k, v in runs.items()]}))
    for family in families:
        label, display, folder = FAMILIES[family].label, FAMILIES[family].display, FAMILIES[family].folder
        steps.append(Step(f"digits-vs-photos likelihood study ({display})", "analysis.svhn_likelihood",
                          LikelihoodConfig, {"results": results, "baseline": label, "oe": f"{label}_oe",
                                             "ood": "mini-svhn", "out": str(ev / folder)}))
    steps.append(Step("AUROC-over-training trajectory", "analysis.trajectory", TrajectoryConfig, {
        "runs": [f"{FAMILIES[f].display}={runs[FAMILIES[f].label]}" for f in families], "ood": TRACKED_OOD,
        "out": str(ev / "trajectory")}))
    for family in families:
        steps += _family_extras(study, bench, family, runs)
    return steps


def _family_extras(study: Study, bench: MiniBenchmark, family: str, runs: dict[str, str]) -> list[Step]:
    """A family's own detectors beside its bits/dim, on the first images of each set (they are costly), and its
    bound gap (ELBO against a tight importance-weighted bound, before and after OE)."""
    from analysis.bound_gap import BoundGapConfig
    from analysis.compare import CompareConfig
    from analysis.evaluate import EvaluateConfig

    fam, cfg, p = FAMILIES[family], study.cfg, study.preset
    r, (det_dir, gap_dir) = fam.runs(p), fam.extra_folders(study.root / "eval")
    label, steps = fam.label, []
    if fam.detectors:
        n = r.detector_images
        steps.append(Step(f"{', '.join(fam.detectors.values())} ({fam.display}, first {n} images per set)",
                          "analysis.evaluate", EvaluateConfig, {
                              "ckpt": [f"{k}={runs[k]}" for k in (label, f"{label}_oe")],
                              "detectors": ["bpd", *fam.detectors], "id_dataset": study.spec(bench.id_set, "test", n=n),
                              "ood": [study.spec(s, ood=True, n=n) for s in bench.ood_sets],
                              "num_to_avg": p.num_to_avg, "device": cfg.device, "out": str(det_dir),
                              "progress": cfg.progress, "strict": True}))
        columns = [f"BPP ({fam.display})={label}:bpd", f"BPP+OE ({fam.display})={label}_oe:bpd"]
        columns += [f"{title}{oe} ({fam.display})={label}{suffix}:{det}" for det, title in fam.detectors.items()
                    for oe, suffix in (("", ""), ("+OE", "_oe"))]
        steps.append(Step(f"{', '.join(fam.detectors.values())} table ({fam.display})", "analysis.compare",
                          CompareConfig, {"results": [str(det_dir / "results.json")], "columns": columns,
                                          "out": str(det_dir / "compare")}))
    if fam.bound_gap:
        steps.append(Step(f"bound gap ({fam.display}, first {r.gap_images} images per set)", "analysis.bound_gap",
                          BoundGapConfig, {
                              "baseline": runs[label], "oe": runs[f"{label}_oe"],
                              "id_dataset": study.spec(bench.id_set, "test"),
                              "ood": [study.spec(s, ood=True) for s in bench.ood_sets], "k_large": r.gap_k,
                              "limit": r.gap_images, "device": cfg.device, "out": str(gap_dir),
                              "progress": cfg.progress}))
    return steps


def _tool_mains() -> dict[str, Callable[[Sequence[str]], object]]:
    """Module -> ``main`` of every tool the study runs (in this process)."""
    from analysis import bound_gap, compare, evaluate, svhn_likelihood, trajectory
    from analysis.figures import __main__ as figures
    from classifiers_oe import train as cls_train
    from density_oe import train as density_train
    return {"classifiers_oe.train": cls_train.main, "density_oe.train": density_train.main,
            "analysis.evaluate": evaluate.main, "analysis.compare": compare.main, "analysis.figures": figures.main,
            "analysis.svhn_likelihood": svhn_likelihood.main, "analysis.trajectory": trajectory.main,
            "analysis.bound_gap": bound_gap.main}


def run_study(cfg: StudyConfig) -> Path:
    from .report import write_report

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    p = PRESETS[cfg.preset]
    root = check_writable_folder(cfg.out)
    save_config(cfg, root / "study_config.json")
    study = Study(cfg, p, root, amp=resolve_amp(cfg.amp, cfg.device))
    bench = get_benchmark(cfg.benchmark)
    t_start = time.time()
    families = list(cfg.models) or list(p.models)
    mains = _tool_mains()
    for step in study_steps(study, bench, families):
        study.run(step.name, step.module, mains[step.module], step.argv)
    total = time.time() - t_start
    report = write_report(root, cfg, p, study.steps, total, families, study.amp)
    atomic_write_text(root / "timing.json", json.dumps(
        {"total_seconds": total, "cpu_seconds": sum(s.cpu_seconds for s in study.steps),
         "peak_rss_mb": max(s.peak_rss_mb for s in study.steps), "amp": study.amp, "cpu": cpu_model(),
         "threads": torch.get_num_threads(), "steps": [asdict(s) for s in study.steps], "preset": asdict(p)},
        indent=1) + "\n")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(StudyConfig, argv, prog="python -m study.mini")
    report = run_study(cfg)
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
