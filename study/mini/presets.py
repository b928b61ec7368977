"""The mini-study's sizes: the presets (``tiny``, ``default``, ``full``) and how each density family is trained at
a preset (:data:`FAMILIES`).  Adding a density family to the study: a :class:`Family` here and its sizes in
:class:`Preset`; the report reads the same table."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


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
    vae_epochs: int = 4
    vae_oe_epochs: int = 1
    vae_oe_steps: int = 80           # cap on OE fine-tuning steps per epoch (0: full epochs)
    vae_levels: int = 2              # the small VAE of docs/vae.md: 2 halvings, 16 channels, 4 latent channels
    vae_hidden: int = 16
    vae_latent: int = 4
    vae_batch: int = 32
    vae_ema: float = 0.995
    vae_regret_images: int = 50      # images per set through Likelihood Regret (100 Adam steps each: docs/vae.md)
    vae_gap_images: int = 100        # images per set of the bound gap
    vae_gap_k: int = 64              # samples of its tight bound (the ELBO is the loose one)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(size=8, n_test=100, cls_epochs=3, cls_oe_epochs=2, cls_oe_lr=0.01, cls_depth=10, cls_width=1,
                   cls_full_epochs=True,
                   pcnn_epochs=1, pcnn_oe_epochs=1, pcnn_filters=8, pcnn_resnet=1, pcnn_mix=2, pcnn_batch=32, pcnn_ema=0.9,
                   limit_steps=4, num_to_avg=2, glow_epochs=1, glow_steps=1, glow_hidden=4, glow_ema=0.9,
                   diffusion_epochs=1, diffusion_channels=8, diffusion_t_samples=2, diffusion_oe_t_samples=2,
                   diffusion_ema=0.9, vae_epochs=1, vae_hidden=4, vae_latent=2, vae_ema=0.9, vae_regret_images=20,
                   vae_gap_images=20, vae_gap_k=8),
    # the main job (timings: docs/results.md); the classifier's OE length and learning rate were chosen on
    # validation sets (python -m study.mini.select; docs/mini_benchmark.md)
    "default": Preset(size=16, n_test=1000, n_ood=500, cls_epochs=5, cls_oe_epochs=4, cls_oe_lr=0.01, cls_depth=16,
                      cls_width=2, pcnn_epochs=4, pcnn_oe_epochs=1, pcnn_oe_steps=80, pcnn_filters=32,
                      pcnn_resnet=1, pcnn_mix=5, pcnn_batch=32, pcnn_ema=0.995),
    # every density family: a larger PixelCNN++ trained twice as long, full OE epochs, a small Glow, the diffusion
    # model and the VAE; the classifier's OE length chosen on validation sets for its 10-epoch baseline (python -m
    # study.mini.select; docs/mini_benchmark.md); the diffusion model's epochs, scoring t-draws and OE steps and the
    # VAE's epochs and OE steps chosen on validation sets within the 30-minute budget (docs/diffusion.md, docs/vae.md)
    "full": Preset(size=16, n_test=1000, cls_epochs=10, cls_oe_epochs=8, cls_oe_lr=0.01, cls_depth=16,
                   cls_width=2, pcnn_epochs=8, pcnn_oe_epochs=1, pcnn_filters=48, pcnn_resnet=2, pcnn_mix=5,
                   pcnn_batch=32, pcnn_ema=0.995, models=("pixelcnn", "glow", "diffusion", "vae"), glow_epochs=8,
                   glow_steps=4, glow_hidden=32, diffusion_epochs=8, diffusion_t_samples=8, diffusion_oe_steps=120,
                   vae_epochs=27, vae_oe_steps=160),
}


@dataclass(frozen=True)
class FamilyRuns:
    """How the mini-study trains one density family at a preset: values of the density trainer's config fields
    (``density_oe/config.py``), which the study turns into options with :func:`study.commands.run_argv`."""

    model: dict               # fields of both runs: the network and the batch
    baseline: dict            # fields of the baseline only (its epochs; its EMA: the OE fine-tune scores its
                              # trained weights)
    oe_tune: dict             # fields of the OE fine-tune only
    oe_steps: int = 0         # cap on OE steps per epoch (0: full epochs)
    bf16: bool = True         # trains under the study's bf16 autocast where it runs (False: always float32)
    detector_images: int = 0  # images per set scored by the family's own detectors (Family.detectors)
    gap_images: int = 0       # images per set of the bound gap (Family.bound_gap) ...
    gap_k: int = 0            # ... and the samples of its tight bound


def _pixelcnn_runs(p: Preset) -> FamilyRuns:
    return FamilyRuns({"nr_filters": p.pcnn_filters, "nr_resnet": p.pcnn_resnet, "nr_logistic_mix": p.pcnn_mix,
                       "batch_size": p.pcnn_batch},
                      {"epochs": p.pcnn_epochs, "ema_decay": p.pcnn_ema}, {"epochs": p.pcnn_oe_epochs},
                      oe_steps=p.pcnn_oe_steps)


def _glow_runs(p: Preset) -> FamilyRuns:
    """Glow's baseline warms its learning rate up over the first epoch (as openai's recipe; a cold start at 1e-3 can
    diverge) and initialises actnorm on 4 batches; its log-determinants are sums over every pixel, so it trains in
    float32."""
    steps_per_epoch = p.limit_steps or 5000 // p.glow_batch  # the mini ID sets' train splits have 5000 images
    return FamilyRuns({"glow_levels": p.glow_levels, "glow_steps": p.glow_steps, "glow_hidden": p.glow_hidden,
                       "batch_size": p.glow_batch},
                      {"epochs": p.glow_epochs, "init_batch_size": 4 * p.glow_batch, "warmup_steps": steps_per_epoch,
                       "ema_decay": p.glow_ema}, {"epochs": p.glow_oe_epochs}, bf16=False)


def _diffusion_runs(p: Preset) -> FamilyRuns:
    """The diffusion model: the U-Net in bf16 where the study runs it (the bound stays float32), VDM's one t-draw per
    image in the baseline and ``diffusion_oe_t_samples`` in the OE fine-tune."""
    return FamilyRuns({"diffusion_channels": p.diffusion_channels, "diffusion_levels": p.diffusion_levels,
                       "diffusion_blocks": p.diffusion_blocks, "diffusion_t_samples": p.diffusion_t_samples,
                       "batch_size": p.diffusion_batch},
                      {"epochs": p.diffusion_epochs, "ema_decay": p.diffusion_ema},
                      {"epochs": p.diffusion_oe_epochs, "diffusion_train_t_samples": p.diffusion_oe_t_samples},
                      oe_steps=p.diffusion_oe_steps)


def _vae_runs(p: Preset) -> FamilyRuns:
    """The VAE: trained on the ELBO (``vae_iw_samples`` 1, the default) and OE-tuned on it; its Likelihood Regret
    and bound gap on the first images of each set only (both are costly: docs/vae.md)."""
    return FamilyRuns({"vae_levels": p.vae_levels, "vae_hidden": p.vae_hidden, "vae_latent": p.vae_latent,
                       "batch_size": p.vae_batch}, {"epochs": p.vae_epochs, "ema_decay": p.vae_ema},
                      {"epochs": p.vae_oe_epochs}, oe_steps=p.vae_oe_steps, detector_images=p.vae_regret_images,
                      gap_images=p.vae_gap_images, gap_k=p.vae_gap_k)


@dataclass(frozen=True)
class Family:
    """A density family of the mini-study (its key in :data:`FAMILIES` is its ``--arch``): its run label, display
    name, likelihood-study folder under eval/ and how it is trained."""

    label: str
    display: str
    folder: str
    runs: Callable[[Preset], FamilyRuns]
    detectors: dict = field(default_factory=dict)  # its own detectors -> column titles: scored, beside bits/dim,
                                                   # on the first FamilyRuns.detector_images of each set
    bound_gap: bool = False   # the bound gap of its baseline and OE runs (analysis.bound_gap: needs an encoder)

    def extra_folders(self, eval_dir: Path) -> tuple[Path, Path]:
        """Where its own detectors (their table in ``compare/``) and its bound gap go under ``eval/``."""
        return eval_dir / f"detectors_{self.label}", eval_dir / f"bound_gap_{self.label}"


FAMILIES = {"pixelcnn": Family("pcnn", "PixelCNN++", "likelihood", _pixelcnn_runs),
            "glow": Family("glow", "Glow", "likelihood_glow", _glow_runs),
            "diffusion": Family("diff", "Diffusion", "likelihood_diffusion", _diffusion_runs),
            "vae": Family("vae", "VAE", "likelihood_vae", _vae_runs,
                          detectors={"likelihood_regret": "Likelihood Regret"}, bound_gap=True)}
