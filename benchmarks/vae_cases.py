"""VAE cases: the training step and bpd scoring at the CIFAR-10 script's VAE (:data:`benchmarks.sizes.Sizes.vae`),
for the ``--plan`` estimates of ``reproduce.sh --vae``.

There is no reference implementation of this VAE to run beside it (the Likelihood Regret code's VAE is another
network), so the baseline is the same model in a plain PyTorch loop (:mod:`benchmarks.plain_baseline`).  Both cases
use the bound's K of the script's runs (``Sizes.vae.iw_samples``: 1, the ELBO, with a fresh posterior draw per image
in training and the fixed evaluation draw in scoring), which is also the K the score nodes use, since
``density_oe.score`` reads it from the checkpoint's config.

``vae_regret`` times the ``likelihood_regret`` detector (all images of a batch at once, per-image encoder copies
through ``torch.func.vmap``) against the Likelihood Regret authors' loop (``compute_LR.py``: one image at a time, a
deep copy of the encoder, ``torch.optim.Adam``), both ``Sizes.regret_steps`` steps per image (the paper's 100;
``--quick``: 5) and both giving the score in bits/dim.
The evaluation node runs it (``cifar10_vae_eval``); the plan has no estimate for that node.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch

from density_oe.units import bits_per_dim
from density_oe.vae import VAE, VAEConfig, regret
from density_oe.vae.bounds import elbo

from .plain_baseline import score_workload, train_workload
from .workload import BASE, FAST, BenchContext, Workload, register_case

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


def authors_regret_after(model: VAE, x: torch.Tensor, steps: int = regret.STEPS) -> torch.Tensor:
    """``L_K`` ``[B]`` (nats) after the authors' loop, one image at a time: a deep copy of the encoder,
    ``torch.optim.Adam`` (lr 2e-4, betas (0.9, 0.999), weight decay 5e-5), ``steps`` steps on the one-sample
    analytic-KL ELBO with the decoder frozen, then the model's bound with its evaluation draws.  The per-step
    posterior draws are the detector's (:data:`density_oe.vae.regret.DRAW_SEED`), so the two agree."""
    out = []
    for i in range(len(x)):
        xi = x[i:i + 1]
        enc = copy.deepcopy(model.encoder).requires_grad_(True)
        opt = torch.optim.Adam(enc.parameters(), lr=regret.LR, betas=regret.BETAS, weight_decay=regret.WEIGHT_DECAY)
        g = torch.Generator().manual_seed(regret.DRAW_SEED)
        for _ in range(steps):
            mu, logvar = enc(xi)
            mu, logvar = mu.to(torch.promote_types(mu.dtype, torch.float32)), logvar.to(mu.dtype)
            eps = torch.randn((1, 1, *mu.shape[1:]), generator=g, dtype=mu.dtype)
            loss = -elbo(lambda z: model.log_likelihood(z, xi), mu, logvar, eps).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            mu, logvar = enc(xi)
            mu, logvar = mu.to(torch.promote_types(mu.dtype, torch.float32)), logvar.to(mu.dtype)
            out.append(model.bound(xi, mu, logvar, model.eval_noise(model.iw_samples, mu)))
    return torch.cat(out)


@register_case("vae_regret", "VAE Likelihood Regret (an encoder re-optimised per image), CIFAR-10 script's VAE",
               order=100, needs_port=False)
def vae_regret(ctx: BenchContext) -> Workload:
    batch, steps = ctx.sizes.regret_batch, ctx.sizes.regret_steps
    x = ctx.images(batch)

    def fast() -> Callable[[], torch.Tensor]:
        detector = regret.LikelihoodRegret(vae_model(ctx).eval(), steps=steps)
        return lambda: detector.predict(x)

    def authors() -> Callable[[], torch.Tensor]:
        model = vae_model(ctx).eval()
        for p in model.parameters():
            p.requires_grad_(False)          # the decoder is frozen; the encoder copies get their own
        d = x[0].numel()

        def call() -> torch.Tensor:
            with torch.no_grad():
                before = model.log_prob(x)
            return bits_per_dim(before.double(), d) - bits_per_dim(authors_regret_after(model, x, steps).double(), d)
        return call

    return Workload(images=batch, variants={FAST: fast, BASE: authors},
                    detail=f"{ctx.sizes.vae.label()}, {steps} steps per image, batch {batch}, "
                           f"{ctx.sizes.image}x{ctx.sizes.image}",
                    baseline="the Likelihood Regret authors' loop (one image at a time, a deep copy of the "
                             "encoder, torch.optim.Adam)")
