"""VAE cases: the training step and bpd scoring at the CIFAR-10 script's VAE (:data:`benchmarks.sizes.Sizes.vae`),
for the ``--plan`` estimates of ``reproduce.sh --vae``.

There is no reference implementation of this VAE to run beside it (the Likelihood Regret code's VAE is another
network), so the baseline is the same model in a plain PyTorch loop (:mod:`benchmarks.plain_baseline`).  Both cases
use the bound's K of the script's runs (``Sizes.vae.iw_samples``: 1, the ELBO, with a fresh posterior draw per image
in training and the fixed evaluation draw in scoring), which is also the K the score nodes use, since
``density_oe.score`` reads it from the checkpoint's config.  Likelihood Regret is not a case here: its cost is in
``docs/vae.md``.
"""
from __future__ import annotations

import torch

from density_oe.vae import VAE, VAEConfig

from .plain_baseline import score_workload, train_workload
from .workload import BenchContext, Workload, register_case

LR = 3e-4   # the recipe's (the Likelihood Regret code's train_pixel.py)


def vae_model(ctx: BenchContext) -> VAE:
    torch.manual_seed(ctx.seed)
    s = ctx.sizes.vae
    cfg = VAEConfig(vae_levels=s.levels, vae_hidden=s.hidden, vae_latent=s.latent, vae_iw_samples=s.iw_samples)
    return VAE(cfg).to(ctx.device)


@register_case("vae_train", "VAE train step (ELBO), CIFAR-10 script's VAE", order=80, needs_port=False)
def vae_train(ctx: BenchContext) -> Workload:
    return train_workload(ctx, vae_model, LR, ctx.sizes.vae.label(), "VAE benchmark step")


@register_case("vae_score", "VAE bpd scoring (the ELBO), CIFAR-10 script's VAE", order=90, needs_port=False)
def vae_score(ctx: BenchContext) -> Workload:
    return score_workload(ctx, vae_model, ctx.sizes.vae.label())
