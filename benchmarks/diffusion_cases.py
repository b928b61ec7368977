"""Diffusion (VDM bound) cases: the training step and bpd scoring at the CIFAR-10 script's U-Net
(:data:`benchmarks.sizes.Sizes.diffusion`), for the ``--plan`` estimates of ``reproduce.sh --diffusion``.

There is no reference implementation to run beside it (VDM's is JAX), so the baseline is the same model in a
plain PyTorch loop: ``torch.optim.Adam`` with its defaults and ``zero_grad()``, eager, float32 (training), and
``log_prob`` under ``no_grad`` (scoring).  The suite's variant is what its tools run: fused Adam, ``--amp`` autocast
for the U-Net (the bound in float32), ``--compile`` and ``--cuda-graphs`` where asked (training), and
:func:`density_oe.scorer.score_dataset` (uint8 batches in, float64 bpd out).  Training draws one t per image (VDM);
scoring draws the model's default 16 per image, so a scored image costs 16 network passes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from density_oe.diffusion import Diffusion, DiffusionConfig
from density_oe.scorer import Scorer, score_dataset
from density_oe.units import bits_per_dim
from oe_core.run.cuda_graph import StepGraph, TensorLR

from .pixelcnn_cases import uint8_loader
from .workload import BASE, FAST, BenchContext, Workload, register_case

PLAIN = "the same model in a plain PyTorch loop (Adam defaults, eager, float32)"


def diffusion_model(ctx: BenchContext) -> Diffusion:
    torch.manual_seed(ctx.seed)
    s = ctx.sizes.diffusion
    cfg = DiffusionConfig(diffusion_channels=s.channels, diffusion_levels=s.levels, diffusion_blocks=s.blocks)
    return Diffusion(cfg).to(ctx.device)


def _loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return bits_per_dim(model(x), x[0].numel()).mean()


@register_case("diffusion_train", "Diffusion train step (VDM bound), CIFAR-10 script's U-Net", order=60)
def diffusion_train(ctx: BenchContext) -> Workload:
    batch = ctx.sizes.paper_batch
    x = ctx.images(batch)

    def fast() -> Callable[[], torch.Tensor]:
        model = diffusion_model(ctx).train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4, fused=ctx.device.type in ("cpu", "cuda"))
        lrs = TensorLR(opt, ctx.device) if ctx.cuda_graphs else None
        net = torch.compile(model) if ctx.compile else model

        def step(images: torch.Tensor) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss = _loss(net, images)
            loss.backward()
            if lrs is not None:
                with lrs.for_step():
                    opt.step()
            else:
                opt.step()
            return loss.detach()
        graphed = StepGraph(step, ctx.device, name="diffusion benchmark step") if ctx.cuda_graphs else step
        return lambda: graphed(x)

    def plain() -> Callable[[], torch.Tensor]:
        model = diffusion_model(ctx).train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4)

        def step() -> torch.Tensor:
            opt.zero_grad()
            loss = _loss(model, x)
            loss.backward()
            opt.step()
            return loss.detach()
        return step

    s = ctx.sizes.diffusion
    return Workload(images=batch, variants={FAST: fast, BASE: plain},
                    detail=f"{s.label()}, 1 t per image, batch {batch}, {ctx.sizes.image}x{ctx.sizes.image}",
                    baseline=PLAIN)


@register_case("diffusion_score", "Diffusion bpd scoring (16 t per image), CIFAR-10 script's U-Net", order=70)
def diffusion_score(ctx: BenchContext) -> Workload:
    batch = ctx.sizes.score_batch
    images = ctx.uint8_images(batch)
    x = ctx.images(batch)

    def fast() -> Callable[[], np.ndarray]:
        model, loader = diffusion_model(ctx).eval(), uint8_loader(images, batch)
        if not (ctx.compile or ctx.cuda_graphs):
            return lambda: score_dataset(model, loader, ctx.device, ctx.amp)
        scorer = Scorer(model, ctx.device, ctx.amp, compile=ctx.compile,
                        cuda_graphs="on" if ctx.cuda_graphs else "off").__enter__()
        return lambda: scorer(loader)

    def plain() -> Callable[[], torch.Tensor]:
        model = diffusion_model(ctx).eval()

        def call() -> torch.Tensor:
            with torch.no_grad():
                return bits_per_dim(model.log_prob(x), x[0].numel())
        return call

    s = ctx.sizes.diffusion
    return Workload(images=batch, variants={FAST: fast, BASE: plain},
                    detail=f"{s.label()}, batch {batch}, eval mode, no gradients", baseline=PLAIN)
