"""The paper's recipe where it is more than the trainers' defaults, and the names of its runs.

The classifier trainer's defaults (``classifiers_oe/config.py``) are the reference's recipe for every mode, and
the density trainer's (``density_oe/config.py``) are the TF PixelCNN++ recipe; the run graph
(:mod:`study.paper.graph`) passes them nothing but what differs.  What differs lives here and nowhere else: the
other density families' published recipes (:data:`DENSITY`), the sets scored and evaluated, and the benchmark cases
the time estimates read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# the paper's OOD sets (Table 5 order); the score nodes score CIFAR-10 test, these and CIFAR-100
OOD_SETS = ("gaussian", "rademacher", "blobs", "textures", "svhn", "places365", "lsun")
SCORE_SETS = ("cifar10",) + OOD_SETS + ("cifar100",)
TEST_SPLIT_SETS = ("cifar10", "cifar100", "svhn")  # sets with a train split: their test split is read
# images per set at the paper's sizes (for the estimate only)
SET_IMAGES = {"cifar10": 10000, "cifar100": 10000, "svhn": 26032, "textures": 5640, "places365": 10000,
              "lsun": 10000, "gaussian": 10000, "rademacher": 10000, "blobs": 10000}
TRAIN_IMAGES = 50000
PRETTY = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
WRN_MODES = ("baseline", "oe_tune", "oe_scratch")
MODE_WORDS = {"baseline": "baseline", "oe_tune": "OE fine-tune", "oe_scratch": "OE from scratch"}


def run_name(dataset: str, model: str, mode: str) -> str:
    """The run folder under ``--out`` (and the graph node) of one training run: ``cifar10_wrn_oe_tune``."""
    return f"{dataset}_{model}_{mode}"


def score_name(run: str) -> str:
    """The node that writes ``OUT/scores/RUN/<set>.npy``."""
    return f"score_{run}"


def eval_name(dataset: str, model: str = "") -> str:
    """The evaluation node and its folder under ``--out``: ``cifar10_eval``, ``cifar10_glow_eval``."""
    return f"{dataset}_{model}_eval" if model else f"{dataset}_eval"


@dataclass(frozen=True)
class Family:
    """A density family of the graph: the config fields its runs set beyond the density trainer's defaults."""

    title: str
    baseline: dict = field(default_factory=dict)   # beyond the baseline defaults
    oe_tune: dict = field(default_factory=dict)    # beyond the oe_tune defaults
    train_case: str = ""   # benchmark cases for the --plan estimate ("": none; the diffusion OE fine-tune's
    score_case: str = ""   # 4 t-draws per image are not counted)
    detectors: tuple = ()  # detectors its evaluation node adds to bits/dim
    eval_words: str = ""   # ... and the words for that node's title
    bound_gap: bool = False  # its evaluation runs the bound gap (ELBO against IWAE-256: it needs an encoder)
    paper: bool = False    # in the paper's graph; the others come with their flag (--glow, ...)


DENSITY = {
    "pixelcnn": Family("PixelCNN++", train_case="train_paper", score_case="score", paper=True),
    # openai's batch 512, lr 1e-3 (the trainer's default too) and 10-epoch warm-up, constant lr afterwards
    "glow": Family("Glow", baseline={"batch_size": 512, "lr": 1e-3, "warmup_steps": 970, "lr_decay": 1.0}),
    # the Likelihood Regret code's recipe (train_pixel.py)
    "vae": Family("VAE", baseline={"batch_size": 128, "lr": 3e-4, "lr_decay": 1.0, "epochs": 200},
                  train_case="vae_train", score_case="vae_score", detectors=("likelihood_regret",),
                  eval_words=" (bits/dim and Likelihood Regret), the bound gap (ELBO vs IWAE-256)", bound_gap=True),
    # VDM's CIFAR-10 optimiser settings; 4 t-draws per image in the OE fine-tune (a hinge of a noisy bound)
    "diffusion": Family("Diffusion", baseline={"batch_size": 128, "lr": 2e-4, "beta1": 0.9, "beta2": 0.99,
                                               "warmup_steps": 100, "lr_decay": 1.0, "ema_decay": 0.9999},
                        oe_tune={"diffusion_train_t_samples": 4}, train_case="diffusion_train",
                        score_case="diffusion_score"),
}
EXTRA_DENSITY = tuple(name for name, fam in DENSITY.items() if not fam.paper)  # each has a --NAME flag
