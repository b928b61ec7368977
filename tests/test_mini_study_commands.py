"""The mini-study's commands, read back by each tool's own parser, are the runs the study means to make.

``study_steps`` builds every command from the tool's config dataclass (``study.commands.run_argv``), as the paper's
graph does.  Here each step's argv is parsed by ``oe_core.cli_config.parse_config`` (the tool's CLI, validation
included) and compared, field by field, with the config the step intends: for the trainers, as this file states it
from the preset (which preset size sets which config field), for every tool also with the step's own values.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from oe_core.cli_config import parse_config
from study.mini import study as mini_study
from study.mini.presets import FAMILIES, PRESETS
from study.mini_benchmark.versions import BENCHMARKS, get_benchmark

ALL_FAMILIES = ("pixelcnn", "glow", "diffusion", "vae")
ROOT = Path("/runs/demo")
# the study's own options that reach the trainers: the defaults, and every one set away from them
OPTIONS = {"defaults": {}, "set": {"device": "cpu", "seed": 7, "progress": False, "fresh": True, "amp": "bf16"}}


def _steps(preset: str, bench: str, options: dict, families=ALL_FAMILIES) -> list[mini_study.Step]:
    cfg = mini_study.StudyConfig(out=str(ROOT), preset=preset, benchmark=bench, **options)
    amp = "bf16" if cfg.amp == "bf16" else "none"
    study = mini_study.Study(cfg, PRESETS[preset], ROOT, amp=amp)
    return mini_study.study_steps(study, get_benchmark(bench), list(families))


def _run(cfg: mini_study.StudyConfig, p, out: str, amp: str, limit: int) -> dict:
    """What every training run of the study sets, as the study means it."""
    return {"out": str(ROOT / out), "device": cfg.device, "seed": cfg.seed, "num_workers": 0, "image_size": p.size,
            "amp": amp, "limit_steps": limit, "progress": cfg.progress, "resume": not cfg.fresh}


def _cap(*caps: int) -> int:
    return min([c for c in caps if c] or [0])


def _density(family: str, p) -> tuple[dict, dict, dict, int, bool]:
    """(both runs, baseline only, OE fine-tune only, OE step cap, trains under the study's bf16) of a family."""
    if family == "pixelcnn":
        return ({"nr_filters": p.pcnn_filters, "nr_resnet": p.pcnn_resnet, "nr_logistic_mix": p.pcnn_mix,
                 "batch_size": p.pcnn_batch}, {"epochs": p.pcnn_epochs, "ema_decay": p.pcnn_ema},
                {"epochs": p.pcnn_oe_epochs}, p.pcnn_oe_steps, True)
    if family == "glow":   # warm-up over one epoch, actnorm initialised on 4 batches, always float32
        return ({"glow_levels": p.glow_levels, "glow_steps": p.glow_steps, "glow_hidden": p.glow_hidden,
                 "batch_size": p.glow_batch},
                {"epochs": p.glow_epochs, "ema_decay": p.glow_ema, "init_batch_size": 4 * p.glow_batch,
                 "warmup_steps": p.limit_steps or 5000 // p.glow_batch}, {"epochs": p.glow_oe_epochs}, 0, False)
    if family == "vae":
        return ({"vae_levels": p.vae_levels, "vae_hidden": p.vae_hidden, "vae_latent": p.vae_latent,
                 "batch_size": p.vae_batch}, {"epochs": p.vae_epochs, "ema_decay": p.vae_ema},
                {"epochs": p.vae_oe_epochs}, p.vae_oe_steps, True)
    assert family == "diffusion"
    return ({"diffusion_channels": p.diffusion_channels, "diffusion_levels": p.diffusion_levels,
             "diffusion_blocks": p.diffusion_blocks, "diffusion_t_samples": p.diffusion_t_samples,
             "batch_size": p.diffusion_batch}, {"epochs": p.diffusion_epochs, "ema_decay": p.diffusion_ema},
            {"epochs": p.diffusion_oe_epochs, "diffusion_train_t_samples": p.diffusion_oe_t_samples},
            p.diffusion_oe_steps, True)


def intended_training_runs(preset: str, bench: str, options: dict) -> dict[str, tuple[type, dict]]:
    """Step name -> (config class, the fields the run sets) of every training run, from the preset."""
    from classifiers_oe.config import ClassifierConfig
    from density_oe.config import DensityConfig

    p, b = PRESETS[preset], get_benchmark(bench)
    cfg = mini_study.StudyConfig(preset=preset, benchmark=bench, **options)
    amp = "bf16" if cfg.amp == "bf16" else "none"
    cls_limit = 0 if p.cls_full_epochs else p.limit_steps
    wrn = {"dataset": b.id_set, "arch": "wrn", "depth": p.cls_depth, "widen_factor": p.cls_width}
    runs = {"classifier baseline": (ClassifierConfig, {"mode": "baseline", "epochs": p.cls_epochs, **wrn,
                                                       **_run(cfg, p, "clf", amp, cls_limit)}),
            "classifier OE fine-tune": (ClassifierConfig, {
                "mode": "oe_tune", "init": str(ROOT / "clf"), "outliers": b.outliers, "epochs": p.cls_oe_epochs,
                "lr": p.cls_oe_lr or 0.001, **wrn, **_run(cfg, p, "clf_oe", amp, cls_limit)})}
    for family in ALL_FAMILIES:
        fam = FAMILIES[family]
        both, base, tune, oe_steps, bf16 = _density(family, p)
        famp = amp if bf16 else "none"
        runs[f"{fam.display} baseline"] = (DensityConfig, {
            "arch": family, "mode": "baseline", "dataset": b.id_set, **both, **base, "track_ood": ["mini-svhn"],
            "track_images": p.n_ood or p.n_test, **_run(cfg, p, fam.label, famp, p.limit_steps)})
        runs[f"{fam.display} OE fine-tune"] = (DensityConfig, {
            "arch": family, "mode": "oe_tune", "dataset": b.id_set, "init": str(ROOT / fam.label),
            "outliers": b.outliers, **both, **tune, **_run(cfg, p, f"{fam.label}_oe", famp,
                                                            _cap(oe_steps, p.limit_steps))})
    return runs


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("bench", list(BENCHMARKS))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_training_command_resolves_to_the_run_the_preset_means(preset, bench, options):
    steps = {s.name: s for s in _steps(preset, bench, OPTIONS[options])}
    intended = intended_training_runs(preset, bench, OPTIONS[options])
    assert [n for n in steps if n in intended] == list(intended)   # every training run, in the study's order
    for name, (cls, values) in intended.items():
        step = steps[name]
        assert step.config is cls
        got = dataclasses.asdict(parse_config(cls, step.argv))        # the trainer's own CLI, validated
        want = dataclasses.asdict(cls(**values))                      # the rest at the trainer's defaults
        assert got == want, (name, {k: (got[k], want[k]) for k in got if got[k] != want[k]})


@pytest.mark.parametrize("bench", list(BENCHMARKS))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_command_of_the_study_reads_back_to_its_values(preset, bench):
    """The evaluators too: each tool's parser turns the step's argv into exactly the step's values."""
    steps = _steps(preset, bench, OPTIONS["set"])
    assert {s.module for s in steps} == {"classifiers_oe.train", "density_oe.train", "analysis.evaluate",
                                         "analysis.compare", "analysis.figures", "analysis.svhn_likelihood",
                                         "analysis.trajectory", "analysis.bound_gap"}
    for step in steps:
        cfg = parse_config(step.config, step.argv)
        assert {k: getattr(cfg, k) for k in step.values} == step.values, step.name


def test_only_the_run_identity_and_what_differs_from_the_defaults_is_passed():
    steps = {s.name: s for s in _steps("tiny", "v2", {}, families=("pixelcnn",))}
    base, tune = steps["PixelCNN++ baseline"].argv, steps["PixelCNN++ OE fine-tune"].argv
    assert base[:6] == ["--arch", "pixelcnn", "--mode", "baseline", "--dataset", "mini-id"]
    assert "--device" not in base and "--seed" not in base and "--resume" not in base   # the trainer's defaults
    assert tune[tune.index("--init") + 1] == str(ROOT / "pcnn") and "--ema-decay" not in tune
    evaluate = steps["OOD evaluation (reference protocol)"].argv
    assert evaluate[evaluate.index("--num-to-avg") + 1] == str(PRESETS["tiny"].num_to_avg) and "--strict" in evaluate
