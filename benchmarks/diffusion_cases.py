"""Diffusion (VDM bound) cases: the training step and bpd scoring at the CIFAR-10 script's U-Net
(:data:`benchmarks.sizes.Sizes.diffusion`), for the ``--plan`` estimates of ``reproduce.sh --diffusion``.

There is no reference implementation to run beside it (VDM's is JAX), so the baseline is the same model in a
plain PyTorch loop (:mod:`benchmarks.plain_baseline`).  Training draws one t per image (VDM); scoring draws the
model's default 16 per image, so a scored image costs 16 network passes.
"""
from __future__ import annotations

import torch

from density_oe.diffusion import Diffusion, DiffusionConfig

from .plain_baseline import score_workload, train_workload
from .workload import BenchContext, Workload, register_case

LR = 2e-4   # the recipe's (VDM's CIFAR-10 optimiser)


def diffusion_model(ctx: BenchContext) -> Diffusion:
    torch.manual_seed(ctx.seed)
    s = ctx.sizes.diffusion
    cfg = DiffusionConfig(diffusion_channels=s.channels, diffusion_levels=s.levels, diffusion_blocks=s.blocks)
    return Diffusion(cfg).to(ctx.device)


@register_case("diffusion_train", "Diffusion train step (VDM bound), CIFAR-10 script's U-Net", order=60,
               needs_port=False)
def diffusion_train(ctx: BenchContext) -> Workload:
    return train_workload(ctx, diffusion_model, LR, f"{ctx.sizes.diffusion.label()}, 1 t per image",
                          "diffusion benchmark step")


@register_case("diffusion_score", "Diffusion bpd scoring (16 t per image), CIFAR-10 script's U-Net", order=70,
               needs_port=False)
def diffusion_score(ctx: BenchContext) -> Workload:
    return score_workload(ctx, diffusion_model, ctx.sizes.diffusion.label())
