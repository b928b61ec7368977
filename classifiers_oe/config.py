"""The classifier trainer's config: the reference's hyperparameters as defaults, per mode.

| mode       | epochs | lr    | outliers                                  |
|------------|--------|-------|-------------------------------------------|
| baseline   | 100    | 0.1   | none (cross-entropy only)                 |
| oe_tune    | 10     | 0.001 | yes, starting from ``--init`` weights     |
| oe_scratch | 100    | 0.1   | yes, from a fresh initialisation          |

Common to all modes (reference ``CIFAR/{baseline,oe_tune,oe_scratch}.py``): WRN-40-2
with dropout 0.3; SGD with Nesterov momentum 0.9 and weight decay 5e-4 on every
parameter; per-step cosine decay from ``lr`` to 1e-6 (absolute); batches of 128
in-distribution and 256 outlier images; random crop (padding 4) + horizontal
flip on both; test batches of 200; seed 1.  ``--epochs`` and ``--lr`` left unset
take their mode's default, ``--lam`` its loss's (0.5 for OE, 0.1 for the energy
loss), and the resolved values are what ``config.json`` records.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from oe_core.cli_config import fill_unset, help_field, require
from oe_core.run import RunConfig
from oe_core.run.training_data import OutlierOptions

from .models import ARCHS, NORMS

MODES = ("baseline", "oe_tune", "oe_scratch")
MODE_DEFAULTS: dict[str, dict[str, int | float]] = {
    "baseline": {"epochs": 100, "lr": 0.1},
    "oe_tune": {"epochs": 10, "lr": 0.001},
    "oe_scratch": {"epochs": 100, "lr": 0.1},
}
OE_LOSSES = ("oe", "energy")
LAM_DEFAULTS = {"oe": 0.5, "energy": 0.1}  # the OE paper's vision weight; Liu et al. (2020)'s energy weight
KIND = "classifier"  # the checkpoint kind of this package's runs


@dataclass
class ClassifierConfig(OutlierOptions, RunConfig):
    """Train a WRN/AllConv classifier: baseline, Outlier Exposure fine-tuning (oe_tune) or OE from scratch."""

    # field names in the config.json of older runs (energy_weight was folded into lam)
    RENAMED: ClassVar[dict[str, Optional[str]]] = {"baseline": "init", "oe_lambda": "lam", "energy_weight": None}

    mode: str = help_field("baseline", "baseline: cross-entropy only; oe_tune: fine-tune --init weights with "
                                       "OE; oe_scratch: train with OE from the start", choices=MODES)
    epochs: Optional[int] = help_field(None, "number of epochs (unset: 100 for baseline/oe_scratch, 10 for "
                                             "oe_tune)")
    dataset: str = help_field("cifar10", "in-distribution dataset (a registered name with labels, see "
                                         "`python -m oe_core.data`)")
    image_size: int = help_field(0, "image side passed as size= to datasets generated at a chosen size "
                                    "(mini-*, toy-shapes, noise); 0 keeps each dataset's own size")
    arch: str = help_field("wrn", "architecture", choices=tuple(ARCHS))
    depth: int = help_field(40, "WRN depth (6n+4)")
    widen_factor: int = help_field(2, "WRN widen factor")
    dropout: float = help_field(0.3, "WRN dropout probability inside each block")
    norm: str = help_field("batch", "WRN normalisation; 'none' drops BatchNorm (not a reference model: for exact "
                                    "multi-process comparisons on CPU)", choices=NORMS)
    sync_bn: bool = help_field(False, "SyncBatchNorm across processes under torchrun (GPU only)")
    oe_loss: str = help_field("oe", "oe: CE + lambda * H(U; softmax) on outliers (Hendrycks et al. 2019); "
                                    "energy: CE + squared energy hinges (Liu et al. 2020)", choices=OE_LOSSES)
    lam: Optional[float] = help_field(None, "lambda, the weight of the OE term (unset: 0.5 for --oe-loss oe, "
                                            "the paper's value for vision; 0.1 for --oe-loss energy, Liu et al.'s)",
                                      deprecated=("oe-lambda", "energy-weight"))
    m_in: float = help_field(-25.0, "energy loss: in-distribution energies are pushed below this margin")
    m_out: float = help_field(-7.0, "energy loss: outlier energies are pushed above this margin")
    init: str = help_field("", "oe_tune: the model to start from (a classifier run folder, a checkpoint, or a "
                               "state dict saved by the reference code)", deprecated=("baseline",))
    lr: Optional[float] = help_field(None, "initial learning rate (unset: 0.1 for baseline/oe_scratch, 0.001 "
                                           "for oe_tune)")
    lr_min: float = help_field(1e-6, "learning rate at the end of the per-step cosine schedule (absolute)")
    momentum: float = help_field(0.9, "SGD momentum (Nesterov)")
    nesterov: bool = help_field(True, "use Nesterov momentum")
    weight_decay: float = help_field(5e-4, "L2 weight decay on all parameters")
    batch_size: int = help_field(128, "in-distribution batch size (global, over all processes)")
    oe_batch_size: int = help_field(256, "outlier batch size (global, over all processes)")
    test_batch_size: int = help_field(200, "test batch size")
    augment: bool = help_field(True, "random crop (zero padding 4) + horizontal flip of training and outlier "
                                     "images")

    def __post_init__(self) -> None:
        fill_unset(self, MODE_DEFAULTS.get(self.mode, MODE_DEFAULTS["baseline"]))
        fill_unset(self, {"lam": LAM_DEFAULTS.get(self.oe_loss, LAM_DEFAULTS["oe"])})

    def validate(self) -> None:
        super().validate()
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(0 <= self.lr_min <= self.lr, f"--lr-min must be in [0, --lr={self.lr}], got {self.lr_min}")
        require(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(self.momentum >= 0 and self.weight_decay >= 0, "--momentum and --weight-decay must be >= 0")
        require(not self.nesterov or self.momentum > 0, "--nesterov needs --momentum > 0")
        for name in ("batch_size", "oe_batch_size", "test_batch_size"):
            require(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be positive")
        require(self.image_size >= 0, f"--image-size must be >= 0, got {self.image_size}")
        require(self.lam >= 0, f"--lam must be >= 0, got {self.lam}")
        require(self.mode != "oe_tune" or bool(self.init),
                "--mode oe_tune needs --init (the baseline run folder or checkpoint to fine-tune)")
        require(self.mode == "oe_tune" or not self.init,
                f"--init is only used by --mode oe_tune (got --mode {self.mode})")
