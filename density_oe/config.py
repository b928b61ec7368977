"""The density trainer's config: the TF PixelCNN++ recipe as defaults, per mode, for both families
(``--arch pixelcnn``, the default, ``--arch glow`` or ``--arch vae``; see :mod:`density_oe.archs`).

| mode     | epochs | lr    | batch (in + outliers) | start                                   | evaluation weights |
|----------|--------|-------|-----------------------|-----------------------------------------|--------------------|
| baseline | 300    | 1e-3  | 128                   | fresh, data-dependent init              | EMA 0.9995 (TF)    |
| oe_tune  | 2      | 2e-4  | 64 + 64               | ``--init`` weights (a run or port file) | the trained ones   |

Common to both (TF ``train.py``): Adam with betas (0.95, 0.9995), the learning rate multiplied by 0.999995 after
every step, element-wise dropout 0.5, no augmentation, the last partial training batch dropped, seed 1.

The baseline evaluates, samples and scores its Polyak EMA 0.9995, as the TF code.  The OE fine-tune uses its
trained weights (``--ema-decay`` unset means 0 there), as the pclucas14 port the paper used has no EMA.  An EMA
started from the loaded weights would keep ``0.9995^steps`` of the pre-OE model, so "after OE" would be scored
partly with the baseline (``density_oe/README.md``, "Which weights are scored after OE").  An explicit
``--ema-decay`` in oe_tune is zero-debiased (:class:`~density_oe.ema.EMA`), so it holds none of the pre-OE weights.
``config.json`` records the choice in ``eval_weights``.

Choices where the sources are silent:

* epochs (baseline): the TF code's ``max_epochs`` is 5000, a stop-when-you-like bound.  300 is a budget, not a
  convergence claim; resume with a larger ``--epochs`` to continue.
* batch: 128 is the TF global batch (16 per GPU x 8); here it is global over all torchrun processes.  OE
  fine-tuning feeds 64 in-distribution and 64 outlier images through one forward pass.
* lr (oe_tune): the paper gives none.  2e-4 is the default of the port the authors used, lower than the
  from-scratch 1e-3 because the fine-tune starts from a trained model with a fresh Adam state.
* OE margin and weight: see :mod:`density_oe.losses` (1 bit/dim, ``lam = 1``).
* Glow uses the same optimiser, schedule, evaluation weights and OE loss, so the two families differ only in the
  network.  ``scripts/density_cifar10_glow_baseline.sh`` passes openai's lr 1e-3, batch 512 and 10-epoch
  warm-up.  Glow's default ``--init-batch-size`` is openai's 256 images, PixelCNN++'s is TF's 16.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from oe_core.cli_config import fill_unset, help_field, require
from oe_core.run import RunConfig
from oe_core.run.training_data import OutlierOptions

from .archs import ARCHS, DEFAULT_ARCH, get_arch
from .diffusion import DiffusionConfig
from .glow import GlowConfig
from .losses import MARGIN_UNITS
from .pixelcnn import PixelCNNConfig
from .vae import VAEConfig

MODES = ("baseline", "oe_tune")
MODE_DEFAULTS: dict[str, dict[str, int | float]] = {
    "baseline": {"epochs": 300, "lr": 1e-3, "batch_size": 128, "ema_decay": 0.9995},
    "oe_tune": {"epochs": 2, "lr": 2e-4, "batch_size": 64, "ema_decay": 0.0},
}
KIND = "density"  # the checkpoint kind of this package's runs


@dataclass
class DensityConfig(PixelCNNConfig, GlowConfig, VAEConfig, DiffusionConfig, OutlierOptions, RunConfig):
    """Train a density model (PixelCNN++, Glow, VAE or diffusion) by maximum likelihood (baseline) or fine-tune it
    with the OE margin ranking loss (oe_tune)."""

    RENAMED: ClassVar[dict[str, str]] = {"oe_lambda": "lam"}  # old config.json field names

    arch: str = help_field(DEFAULT_ARCH, "density model family: " + ", ".join(
        f"{n} ({ARCHS.get(n).display})" for n in ARCHS.names()) + " (PixelCNN++: the --nr-* and --dropout options; "
        "the others: the options named after the family, --glow-*, --vae-*, --diffusion-*)", choices=tuple(ARCHS.names()))
    mode: str = help_field("baseline", "baseline: maximum likelihood from scratch; oe_tune: fine-tune --init "
                                       "with the OE margin ranking loss on outliers", choices=MODES)
    epochs: Optional[int] = help_field(None, "number of epochs (unset: 300 for baseline, 2 for oe_tune)")
    dataset: str = help_field("cifar10", "in-distribution dataset (registered name with train and test splits, "
                                         "see `python -m oe_core.data`)")
    image_size: int = help_field(0, "image side passed as size= to datasets generated at a chosen size "
                                    "(mini-*, noise); 0 keeps each dataset's own size (a multiple of 4)")
    init: str = help_field("", "oe_tune: the model to start from: a density run folder or checkpoint (its EMA "
                               "weights) of the same --arch, or a pclucas14/pixel-cnn-pp .pth file")
    oe_margin: float = help_field(1.0, "OE hinge margin m in max(0, m + bpd_in - bpd_out)")
    oe_margin_unit: str = help_field("bits_per_dim", "unit of --oe-margin (per_image units are divided by the "
                                                     "number of dimensions 3*H*W)", choices=MARGIN_UNITS)
    lam: float = help_field(1.0, "lambda, the weight of the OE hinge term (both terms are in bits/dim)",
                            deprecated=("oe-lambda",))
    lr: Optional[float] = help_field(None, "initial Adam learning rate (unset: 1e-3 for baseline, 2e-4 for "
                                           "oe_tune)")
    lr_decay: float = help_field(0.999995, "learning rate multiplier applied after every optimizer step")
    beta1: float = help_field(0.95, "Adam beta1")
    beta2: float = help_field(0.9995, "Adam beta2")
    ema_decay: Optional[float] = help_field(None, "Polyak averaging decay of the weights used for evaluation, "
                                                  "sampling and scoring (unset: 0.9995 for baseline, as TF; 0 = no "
                                                  "averaging for oe_tune, as the port; in oe_tune an EMA is "
                                                  "zero-debiased so no pre-OE weights remain)")
    data_init: bool = help_field(True, "baseline: data-dependent initialisation of the weight-normalised layers "
                                       "on one batch (as the TF code; --no-data-init keeps PyTorch's defaults)")
    init_batch_size: Optional[int] = help_field(None, "images in the data-dependent initialisation batch "
                                                      "(unset: 16 for pixelcnn as TF, 256 for glow as openai)")
    warmup_steps: int = help_field(0, "linear learning-rate warm-up over the first N optimizer steps (0: none)")
    batch_size: Optional[int] = help_field(None, "in-distribution batch size, global over all processes (unset: "
                                                 "128 for baseline, 64 for oe_tune)")
    oe_batch_size: Optional[int] = help_field(None, "outlier batch size, global (unset: the in-distribution "
                                                    "batch size)")
    test_batch_size: int = help_field(64, "batch size of the per-epoch test pass")
    eval_images: int = help_field(0, "score only the first N test images each epoch (0: all)")
    track_ood: list[str] = help_field([], "OOD sets (registered NAME or NAME:SPLIT, at --image-size; a held-out "
                                          "split such as mini3-id:val tracks validation bits/dim) also scored at every "
                                          "epoch's evaluation, with the same weights, fixed images and fixed random "
                                          "draws: metrics get track_<set>_bpd (mean) and track_<set>_auroc (AUROC "
                                          "of bits/dim, OOD positive, against the test images): the AUROC-over-"
                                          "training trajectory that the analysis tabulates and plots")
    track_images: int = help_field(500, "images of each --track-ood set scored (its first N)")
    perturb_rate: float = help_field(0.0, "train on perturbed images: each subpixel of every in-distribution "
                                          "training image is replaced by a uniform draw from 0..255 with this "
                                          "probability (the likelihood ratio's background model; Ren et al. 2019 "
                                          "use 0.1-0.2); 0: no perturbation")
    # resolved, not an option: which weights test_bpd, scoring and sampling use (recorded in config.json)
    eval_weights: str = field(default="", init=False)

    def __post_init__(self) -> None:
        fill_unset(self, MODE_DEFAULTS.get(self.mode, MODE_DEFAULTS["baseline"]))
        if self.oe_batch_size is None:
            self.oe_batch_size = self.batch_size
        if self.init_batch_size is None and self.arch in ARCHS:
            self.init_batch_size = get_arch(self.arch).init_batch_size
        self.eval_weights = ("trained weights (no averaging)" if self.ema_decay == 0 else
                             f"zero-debiased EMA {self.ema_decay} of the fine-tuning steps" if self.ema_debiased else
                             f"EMA {self.ema_decay} started from the initial weights")

    @property
    def ema_debiased(self) -> bool:
        """oe_tune averages without its starting (pre-OE) weights."""
        return self.mode == "oe_tune"

    @property
    def model_config(self) -> PixelCNNConfig | GlowConfig | VAEConfig | DiffusionConfig:
        """The hyperparameters of the chosen architecture only."""
        return get_arch(self.arch).config(self)

    def validate(self) -> None:
        RunConfig.validate(self)
        self.model_config.validate()  # the chosen family's options only
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(0 <= self.perturb_rate <= 1, f"--perturb-rate must be in [0, 1], got {self.perturb_rate}")
        require(0 < self.lr_decay <= 1, f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")
        require(0 <= self.ema_decay < 1, f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        for name in ("batch_size", "oe_batch_size", "test_batch_size", "init_batch_size"):
            require(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be positive")
        require(self.eval_images >= 0, f"--eval-images must be >= 0, got {self.eval_images}")
        require(self.track_images > 0, f"--track-images must be positive, got {self.track_images}")
        require(len(set(self.track_ood)) == len(self.track_ood), f"--track-ood names a set twice: {self.track_ood}")
        arch = get_arch(self.arch)
        multiple = arch.multiple(self.model_config)
        require(self.image_size >= 0 and self.image_size % multiple == 0,
                f"--image-size must be 0 or a multiple of {multiple} ({arch.display} halves the image "
                f"{multiple.bit_length() - 1} times), got {self.image_size}")
        require(self.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        require(self.lam >= 0, f"--lam must be >= 0, got {self.lam}")
        require(self.mode != "oe_tune" or bool(self.init),
                "--mode oe_tune needs --init (the trained density run, checkpoint or port .pth to fine-tune)")
        require(self.mode == "oe_tune" or not self.init,
                f"--init is only used by --mode oe_tune (got --mode {self.mode})")
