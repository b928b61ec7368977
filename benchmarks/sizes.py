"""Problem sizes per device: the paper's shapes where the machine allows, scaled batches where it does not.

The CPU profile keeps a run short on a small CPU: the paper config at batch 4, and the WRN-40-2 OE step at 32 + 64
images.  That is the reference's 1:2 ratio at a quarter of its 128 + 256; the cost per image does not depend on the
batch (the linearity series checks it).  Run times: ``docs/performance.md``.  The GPU profile uses the reference's
128 + 256 and larger PixelCNN++ batches (the train step at the port's default batch 64, scoring at 256); ``quick`` shrinks everything to a smoke test of the harness.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PixelCNNShape:
    """A PixelCNN++ configuration: ``nr_filters``, ``nr_resnet`` (``nr_logistic_mix`` is always the paper's 10)."""

    nr_filters: int
    nr_resnet: int

    def label(self) -> str:
        return f"F={self.nr_filters}, R={self.nr_resnet}"


@dataclass(frozen=True)
class DiffusionShape:
    """A diffusion U-Net (:mod:`density_oe.diffusion.unet`): base width, resolutions, blocks per resolution."""

    channels: int
    levels: int
    blocks: int

    def label(self) -> str:
        return f"C={self.channels}, L={self.levels}, N={self.blocks}"


@dataclass(frozen=True)
class VAEShape:
    """A VAE (:mod:`density_oe.vae.model`): stride-2 levels, first-level channels, latent channels, and the samples
    K of the importance-weighted bound it trains and scores with (1: the ELBO)."""

    levels: int
    hidden: int
    latent: int
    iw_samples: int = 1

    def label(self) -> str:
        return f"L={self.levels}, C={self.hidden}, Z={self.latent}, K={self.iw_samples}"


PAPER = PixelCNNShape(160, 5)
SMALL = PixelCNNShape(32, 2)


@dataclass(frozen=True)
class Sizes:
    """Every size the cases use."""

    image: int                       # image side (32 = CIFAR)
    small: PixelCNNShape
    paper: PixelCNNShape
    small_batch: int                 # train step at the small config
    paper_batch: int                 # train step at the paper config
    score_batch: int                 # scoring at the paper config
    oe_shape: str                    # "small" or "paper": the config of the OE fine-tuning step
    oe_batch: int                    # in-distribution images per OE step (as many outliers)
    loss_batch: int                  # the DMOL loss alone
    wrn_depth: int
    wrn_batch: tuple[int, int]       # in-distribution, outlier images per WRN OE step
    linear_batches: tuple[int, ...]  # train-step batch sizes for the linearity fit (small config)
    linear_images: tuple[int, ...]   # data-set sizes scored for the linearity fit (small config)
    linear_score_batch: int
    matmul_sizes: tuple[int, ...]    # square matmul sizes for the peak
    diffusion: DiffusionShape = DiffusionShape(128, 3, 2)   # scripts/density_cifar10_diffusion_baseline.sh's
    vae: VAEShape = VAEShape(3, 64, 16, 1)   # scripts/density_cifar10_vae_baseline.sh's, and the K its scores use
    regret_batch: int = 2                    # images per Likelihood Regret call
    regret_steps: int = 100                  # encoder Adam steps per image (the paper's 100)

    def shape(self, which: str) -> PixelCNNShape:
        return {"small": self.small, "paper": self.paper}[which]


PROFILES: dict[str, Sizes] = {
    "cpu": Sizes(image=32, small=SMALL, paper=PAPER, small_batch=32, paper_batch=4, score_batch=4, oe_shape="small",
                 oe_batch=16, loss_batch=64, wrn_depth=40, wrn_batch=(32, 64), linear_batches=(1, 2, 4, 8),
                 linear_images=(16, 32, 64), linear_score_batch=16, matmul_sizes=(1024, 2048)),
    "gpu": Sizes(image=32, small=SMALL, paper=PAPER, small_batch=32, paper_batch=64, score_batch=256, oe_shape="paper",
                 oe_batch=16, loss_batch=64, wrn_depth=40, wrn_batch=(128, 256), linear_batches=(8, 16, 32, 64),
                 linear_images=(512, 1024, 2048), linear_score_batch=128, matmul_sizes=(4096, 8192), regret_batch=64),
    "quick": Sizes(image=8, small=PixelCNNShape(8, 1), paper=PixelCNNShape(16, 1), small_batch=4, paper_batch=2,
                   score_batch=2, oe_shape="small", oe_batch=2, loss_batch=4, wrn_depth=10, wrn_batch=(4, 8),
                   linear_batches=(1, 2, 4), linear_images=(4, 8, 16), linear_score_batch=4, matmul_sizes=(64, 128),
                   diffusion=DiffusionShape(8, 2, 1), vae=VAEShape(2, 4, 2, 1),
                   regret_steps=5),
}


def sizes_for(device: torch.device, quick: bool) -> tuple[str, Sizes]:
    """The profile name and sizes for ``device`` (any accelerator gets the GPU profile)."""
    name = "quick" if quick else ("cpu" if device.type == "cpu" else "gpu")
    return name, PROFILES[name]
