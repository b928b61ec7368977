"""``python -m analysis.mini_study``: the whole OE study, offline, on the built-in mini benchmark.

The main job of ``scripts/demo.sh``.  On the ``mini-*`` sets (thumbnails of photographs bundled with
scikit-image / scikit-learn / matplotlib; see :mod:`oe_core.data.mini`) it runs, in one process, exactly the
commands a user would type:

1. classifier baseline, then OE fine-tuning on ``mini-outliers``         (``python -m classifiers_oe.train``)
2. small PixelCNN++ baseline, then OE fine-tuning with the margin loss   (``python -m density_oe.train``);
   with ``--models pixelcnn glow`` (preset ``full``) also a small Glow, trained and OE-tuned the same way
3. MSP and bits-per-dim detectors before and after OE on the OOD suite   (``python -m analysis.evaluate``)
4. the comparison table, every figure, the digits-vs-photos likelihood study (``analysis.compare``,
   ``analysis.figures``, ``analysis.svhn_likelihood``)

and writes ``<out>/report.md`` with the tables and figures embedded, the findings stated from the measured
numbers, and the wall time, CPU time and peak memory of every step.  Presets: ``default`` (the main job, a few
minutes on a 2-core CPU), ``full`` (a larger PixelCNN++ trained longer, plus a small Glow), ``tiny`` (a CI-sized
run of the same code path); their measured times are in ``docs/results.md``.  ``--amp auto`` (the
default) trains in bf16 autocast where the CPU or GPU computes bf16 natively (likelihoods and the density head stay
float32; the report says which precision ran); evaluation scores in float32.
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

from oe_core.cli_config import help_field, parse_config, require, save_config
from oe_core.data.mini_benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, get_benchmark
from oe_core.atomic import atomic_write_text
from oe_core.errors import cli_main
from oe_core.outputs import check_writable_folder
from oe_core.run import cpu_model


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
    pcnn_ema: float           # baseline EMA decay: the TF average keeps decay^steps of the initial weights, so a
                              # mini run needs one it forgets (0.9995 over 1250 steps would keep 54%, 0.995 0.2%)
    limit_steps: int = 0      # cap on steps per epoch (0: full epochs)
    cls_oe_lr: float = 0.0    # OE fine-tune learning rate of the classifier (0: the trainer's, the paper's 0.001)
    cls_full_epochs: bool = False  # the classifier runs ignore limit_steps (tiny: cheap at 8 px, and enough
                                   # training that OE's effect on MSP shows, which the test suite checks)
    num_to_avg: int = 10
    n_ood: int = 0            # images per OOD set (0: n_test); the protocol draws n_test/5 of them per trial
    pcnn_oe_steps: int = 0    # cap on PixelCNN++ OE fine-tuning steps per epoch (0: full epochs)
    models: tuple = ("pixelcnn",)  # density model families (--models overrides)
    glow_epochs: int = 8
    glow_oe_epochs: int = 1
    glow_levels: int = 2
    glow_steps: int = 8
    glow_hidden: int = 64
    glow_batch: int = 32
    glow_ema: float = 0.995
    diffusion_epochs: int = 6
    diffusion_oe_epochs: int = 1
    diffusion_oe_steps: int = 80     # cap on OE fine-tuning steps per epoch (0: full epochs)
    diffusion_channels: int = 32     # the U-Net of the feasibility test: 32/64 channels over two resolutions
    diffusion_levels: int = 2
    diffusion_blocks: int = 1
    diffusion_batch: int = 32
    diffusion_ema: float = 0.995
    diffusion_t_samples: int = 16    # t-draws per image when scoring
    diffusion_oe_t_samples: int = 4  # t-draws per image in the OE fine-tune (a noisy bound biases the hinge)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(size=8, n_test=100, cls_epochs=3, cls_oe_epochs=2, cls_oe_lr=0.01, cls_depth=10, cls_width=1,
                   cls_full_epochs=True,
                   pcnn_epochs=1, pcnn_oe_epochs=1, pcnn_filters=8, pcnn_resnet=1, pcnn_mix=2, pcnn_batch=32, pcnn_ema=0.9,
                   limit_steps=4, num_to_avg=2, glow_epochs=1, glow_steps=1, glow_hidden=4, glow_ema=0.9,
                   diffusion_epochs=1, diffusion_channels=8, diffusion_t_samples=2, diffusion_oe_t_samples=2,
                   diffusion_ema=0.9),
    # the main job (timings: docs/results.md); the classifier's OE length and learning rate were chosen on
    # validation sets (analysis.mini_select; docs/mini_benchmark.md)
    "default": Preset(size=16, n_test=1000, n_ood=500, cls_epochs=5, cls_oe_epochs=4, cls_oe_lr=0.01, cls_depth=16,
                      cls_width=2, pcnn_epochs=4, pcnn_oe_epochs=1, pcnn_oe_steps=80, pcnn_filters=32,
                      pcnn_resnet=1, pcnn_mix=5, pcnn_batch=32, pcnn_ema=0.995),
    # a larger PixelCNN++ trained twice as long, full OE epochs, plus a small Glow; the classifier's OE length
    # chosen on validation sets for its 10-epoch baseline (analysis.mini_select; docs/mini_benchmark.md)
    "full": Preset(size=16, n_test=1000, cls_epochs=10, cls_oe_epochs=8, cls_oe_lr=0.01, cls_depth=16,
                   cls_width=2, pcnn_epochs=8, pcnn_oe_epochs=1, pcnn_filters=48, pcnn_resnet=2, pcnn_mix=5,
                   pcnn_batch=32, pcnn_ema=0.995, models=("pixelcnn", "glow"), glow_epochs=8, glow_steps=4,
                   glow_hidden=32),
}

@dataclass(frozen=True)
class FamilyRuns:
    """How the mini-study trains one density family at a preset."""

    model: list[str]          # model and batch options of both runs
    baseline_only: list[str]  # options of the baseline run only (its EMA: the OE fine-tune scores its trained weights)
    epochs: int
    oe_epochs: int
    oe_only: list[str] = field(default_factory=list)  # options of the OE fine-tune only
    oe_steps: int = 0         # cap on OE steps per epoch (0: full epochs)
    bf16: bool = True         # trains under the study's bf16 autocast where it runs (False: always float32)


def _pixelcnn_runs(p: Preset) -> FamilyRuns:
    return FamilyRuns(["--nr-filters", str(p.pcnn_filters), "--nr-resnet", str(p.pcnn_resnet), "--nr-logistic-mix",
                       str(p.pcnn_mix), "--batch-size", str(p.pcnn_batch)],
                      ["--ema-decay", str(p.pcnn_ema)], p.pcnn_epochs, p.pcnn_oe_epochs, oe_steps=p.pcnn_oe_steps)


def _glow_runs(p: Preset) -> FamilyRuns:
    """Glow's baseline warms its learning rate up over the first epoch (as openai's recipe; a cold start at 1e-3 can
    diverge) and initialises actnorm on 4 batches; its log-determinants are sums over every pixel, so it trains in
    float32."""
    steps_per_epoch = p.limit_steps or 5000 // p.glow_batch  # the mini ID sets' train splits have 5000 images
    return FamilyRuns(["--arch", "glow", "--glow-levels", str(p.glow_levels), "--glow-steps", str(p.glow_steps),
                       "--glow-hidden", str(p.glow_hidden), "--batch-size", str(p.glow_batch)],
                      ["--init-batch-size", str(4 * p.glow_batch), "--warmup-steps", str(steps_per_epoch),
                       "--ema-decay", str(p.glow_ema)], p.glow_epochs, p.glow_oe_epochs, bf16=False)


def _diffusion_runs(p: Preset) -> FamilyRuns:
    """The diffusion model: the U-Net in bf16 where the study runs it (the bound stays float32), VDM's one t-draw per
    image in the baseline and ``diffusion_oe_t_samples`` in the OE fine-tune."""
    return FamilyRuns(["--arch", "diffusion", "--diffusion-channels", str(p.diffusion_channels),
                       "--diffusion-levels", str(p.diffusion_levels), "--diffusion-blocks", str(p.diffusion_blocks),
                       "--diffusion-t-samples", str(p.diffusion_t_samples), "--batch-size", str(p.diffusion_batch)],
                      ["--ema-decay", str(p.diffusion_ema)], p.diffusion_epochs, p.diffusion_oe_epochs,
                      oe_only=["--diffusion-train-t-samples", str(p.diffusion_oe_t_samples)],
                      oe_steps=p.diffusion_oe_steps)


@dataclass(frozen=True)
class Family:
    """A density family of the mini-study: its run label, display name, likelihood-study folder under eval/ and
    how it is trained."""

    label: str
    display: str
    folder: str
    runs: Callable[[Preset], FamilyRuns]


FAMILIES = {"pixelcnn": Family("pcnn", "PixelCNN++", "likelihood", _pixelcnn_runs),
            "glow": Family("glow", "Glow", "likelihood_glow", _glow_runs),
            "diffusion": Family("diff", "Diffusion", "likelihood_diffusion", _diffusion_runs)}

OOD_SETS = BENCHMARKS[DEFAULT_BENCHMARK].ood_sets
TRACKED_OOD = "mini-svhn"  # scored at every epoch of each density baseline: the AUROC-over-training trajectory


@dataclass
class StudyConfig:
    """Run the offline mini OE study end to end and write a report."""

    out: str = help_field("runs/demo", "folder for every run, table, figure and report.md")
    preset: str = help_field("default", "default: ~4 min on a 2-core CPU with bf16; full: a larger PixelCNN++ plus Glow (~15 min); "
                                         "tiny: seconds, for CI", choices=tuple(PRESETS))
    benchmark: str = help_field(DEFAULT_BENCHMARK, "mini benchmark version: v2 (crops of 8 photos, one class each; "
                                "test crops of the training photos) or v3 (43 photos in 3 scene classes, whole "
                                "photos held out for val and test); see docs/mini_benchmark.md",
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
                                       "diffusion (empty: the preset's; default and tiny: pixelcnn; full: pixelcnn "
                                       "glow)")

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

    def spec(self, name: str, split: Optional[str] = None, ood: bool = False) -> str:
        p = self.preset
        s = f"{name}:{split}" if split else name
        return f"{s},size={p.size},n={(p.n_ood or p.n_test) if ood else p.n_test}"

    def run(self, name: str, module: str, main: Callable[[Sequence[str]], object], argv: list[str]) -> None:
        command = f"python -m {module} " + shlex.join(argv)
        print(f"\n=== [{len(self.steps) + 1}] {name}\n$ {command}", file=sys.stderr, flush=True)
        t0, c0 = time.time(), cpu_seconds()
        rc = main(argv)
        if rc not in (None, 0):
            raise SystemExit(f"step {name!r} failed with exit code {rc}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        self.steps.append(StepRecord(name, command, time.time() - t0, peak, cpu_seconds() - c0))


def _train_common(study: Study, out: str, limit_steps: int = 0, amp: Optional[str] = None,
                  classifier: bool = False) -> list[str]:
    c = study.cfg
    argv = ["--out", out, "--device", c.device, "--seed", str(c.seed), "--num-workers", "0",
            "--image-size", str(study.preset.size), "--amp", amp or study.amp]
    preset_limit = 0 if classifier and study.preset.cls_full_epochs else study.preset.limit_steps
    limit = min(x for x in (limit_steps, preset_limit, 10 ** 9) if x)
    if limit < 10 ** 9:
        argv += ["--limit-steps", str(limit)]
    if not c.progress:
        argv.append("--no-progress")
    if c.fresh:
        argv.append("--no-resume")
    return argv


def run_study(cfg: StudyConfig) -> Path:
    from classifiers_oe import train as cls_train
    from density_oe import train as density_train

    from . import compare, evaluate, svhn_likelihood, trajectory
    from .figures import __main__ as figures
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
    labels = [FAMILIES[f].label for f in families]
    runs = {k: str(root / k) for k in ("clf", "clf_oe", *[x for lab in labels for x in (lab, f"{lab}_oe")])}

    study.run("classifier baseline", "classifiers_oe.train", cls_train.main, [
        "--mode", "baseline", "--dataset", bench.id_set, "--arch", "wrn", "--depth", str(p.cls_depth),
        "--widen-factor", str(p.cls_width), "--epochs", str(p.cls_epochs),
        *_train_common(study, runs["clf"], classifier=True)])
    study.run("classifier OE fine-tune", "classifiers_oe.train", cls_train.main, [
        "--mode", "oe_tune", "--init", runs["clf"], "--dataset", bench.id_set, "--arch", "wrn",
        "--depth", str(p.cls_depth), "--widen-factor", str(p.cls_width), "--outliers", bench.outliers,
        "--epochs", str(p.cls_oe_epochs), *(["--lr", str(p.cls_oe_lr)] if p.cls_oe_lr else []),
        *_train_common(study, runs["clf_oe"], classifier=True)])
    for family in families:
        fam = FAMILIES[family]
        r = fam.runs(p)
        amp = study.amp if r.bf16 else "none"
        study.run(f"{fam.display} baseline", "density_oe.train", density_train.main, [
            "--mode", "baseline", "--dataset", bench.id_set, "--epochs", str(r.epochs), *r.model, *r.baseline_only,
            "--track-ood", TRACKED_OOD, "--track-images", str(p.n_ood or p.n_test),   # the trajectory
            *_train_common(study, runs[fam.label], 0, amp)])
        study.run(f"{fam.display} OE fine-tune", "density_oe.train", density_train.main, [
            "--mode", "oe_tune", "--init", runs[fam.label], "--dataset", bench.id_set, "--outliers", bench.outliers,
            "--epochs", str(r.oe_epochs), *r.model, *r.oe_only,
            *_train_common(study, runs[f"{fam.label}_oe"], r.oe_steps, amp)])

    ev = root / "eval"
    study.run("OOD evaluation (reference protocol)", "analysis.evaluate", evaluate.main, [
        "--ckpt", *[f"{k}={v}" for k, v in runs.items()], "--detectors", "msp", "bpd",
        "--id-dataset", study.spec(bench.id_set, "test"),
        "--ood", *[study.spec(s, ood=True) for s in bench.ood_sets], "--num-to-avg", str(p.num_to_avg),
        "--device", cfg.device,
        "--out", str(ev), "--strict"])
    columns, bars = ["MSP=clf:msp", "MSP+OE=clf_oe:msp"], []
    for family in families:  # PixelCNN++ keeps the paper's names; other families are named in brackets
        label, display = FAMILIES[family].label, FAMILIES[family].display
        suffix = "" if family == "pixelcnn" else f" ({display})"
        columns += [f"BPP{suffix}={label}:bpd", f"BPP+OE{suffix}={label}_oe:bpd"]
        name = "likelihood" if family == "pixelcnn" else display
        bars += [f"{name}={label}:bpd", f"{name}+OE={label}_oe:bpd"]
    bars += ["MSP=clf:msp", "MSP+OE=clf_oe:msp"]
    study.run("comparison table", "analysis.compare", compare.main, [
        "--results", str(ev / "results.json"), "--columns", *columns, "--out", str(ev / "compare")])
    study.run("figures", "analysis.figures", figures.main, [
        "--results", str(ev / "results.json"), "--out", str(ev / "figures"), "--bars", *bars,
        "--runs", *[f"{k}={v}" for k, v in runs.items()]])
    for family in families:
        label, display, folder = FAMILIES[family].label, FAMILIES[family].display, FAMILIES[family].folder
        study.run(f"digits-vs-photos likelihood study ({display})", "analysis.svhn_likelihood",
                  svhn_likelihood.main, ["--results", str(ev / "results.json"), "--baseline", label, "--oe",
                                         f"{label}_oe", "--ood", "mini-svhn", "--out", str(ev / folder)])
    study.run("AUROC-over-training trajectory", "analysis.trajectory", trajectory.main, [
        "--runs", *[f"{FAMILIES[f].display}={runs[FAMILIES[f].label]}" for f in families], "--ood", TRACKED_OOD,
        "--out", str(ev / "trajectory")])
    total = time.time() - t_start
    report = write_report(root, cfg, p, study.steps, total, families, study.amp)
    atomic_write_text(root / "timing.json", json.dumps(
        {"total_seconds": total, "cpu_seconds": sum(s.cpu_seconds for s in study.steps),
         "peak_rss_mb": max(s.peak_rss_mb for s in study.steps), "amp": study.amp, "cpu": cpu_model(),
         "threads": torch.get_num_threads(), "steps": [asdict(s) for s in study.steps], "preset": asdict(p)},
        indent=1) + "\n")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(StudyConfig, argv, prog="python -m analysis.mini_study")
    report = run_study(cfg)
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
