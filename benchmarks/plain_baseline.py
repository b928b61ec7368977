"""The train-step and scoring workloads of a density family with no reference implementation to run (diffusion,
VAE): the suite's way against the same model in a plain PyTorch loop.

Any model whose ``forward(x)`` gives a per-image log-likelihood (or a bound on it) in nats and whose ``log_prob(x)``
is its evaluation score fits.  The suite's variant is what its tools run: fused Adam, ``--amp`` autocast (each
family keeps its likelihood in float32), ``--compile`` and ``--cuda-graphs`` where asked (training), and
:func:`density_oe.scorer.score_dataset` (uint8 batches in, float64 bpd out).  The baseline: ``torch.optim.Adam``
with its defaults and ``zero_grad()``, eager, float32 (training), and ``log_prob`` under ``no_grad`` (scoring).
Both variants build their model from the same seed and see the same random 8-bit images.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from density_oe.scorer import Scorer, score_dataset
from density_oe.units import bits_per_dim
from oe_core.run.cuda_graph import StepGraph, TensorLR

from .pixelcnn_cases import uint8_loader
from .workload import BASE, FAST, BenchContext, Workload

PLAIN = "the same model in a plain PyTorch loop (Adam defaults, eager, float32)"

Build = Callable[[BenchContext], torch.nn.Module]


def mean_bpd(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The baseline training loss of every density family: the mean bits/dim of ``model(x)`` (nats per image)."""
    return bits_per_dim(model(x), x[0].numel()).mean()


def train_workload(ctx: BenchContext, build: Build, lr: float, detail: str, name: str) -> Workload:
    """One training step on the mean bits/dim of a batch of ``ctx.sizes.paper_batch`` images, Adam at ``lr``;
    ``name`` labels the CUDA graph of the suite's step."""
    batch = ctx.sizes.paper_batch
    x = ctx.images(batch)

    def fast() -> Callable[[], torch.Tensor]:
        model = build(ctx).train()
        opt = torch.optim.Adam(model.parameters(), lr=lr, fused=ctx.device.type in ("cpu", "cuda"))
        lrs = TensorLR(opt, ctx.device) if ctx.cuda_graphs else None
        net = torch.compile(model) if ctx.compile else model

        def step(images: torch.Tensor) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss = mean_bpd(net, images)
            loss.backward()
            if lrs is not None:
                with lrs.for_step():
                    opt.step()
            else:
                opt.step()
            return loss.detach()
        graphed = StepGraph(step, ctx.device, name=name) if ctx.cuda_graphs else step
        return lambda: graphed(x)

    def plain() -> Callable[[], torch.Tensor]:
        model = build(ctx).train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)

        def step() -> torch.Tensor:
            opt.zero_grad()
            loss = mean_bpd(model, x)
            loss.backward()
            opt.step()
            return loss.detach()
        return step

    return Workload(images=batch, variants={FAST: fast, BASE: plain},
                    detail=f"{detail}, batch {batch}, {ctx.sizes.image}x{ctx.sizes.image}", baseline=PLAIN)


def score_workload(ctx: BenchContext, build: Build, detail: str) -> Workload:
    """Per-image bits/dim of ``ctx.sizes.score_batch`` images under ``log_prob`` (eval mode, no gradients)."""
    batch = ctx.sizes.score_batch
    images = ctx.uint8_images(batch)
    x = ctx.images(batch)

    def fast() -> Callable[[], np.ndarray]:
        model, loader = build(ctx).eval(), uint8_loader(images, batch)
        if not (ctx.compile or ctx.cuda_graphs):
            return lambda: score_dataset(model, loader, ctx.device, ctx.amp)
        scorer = Scorer(model, ctx.device, ctx.amp, compile=ctx.compile,
                        cuda_graphs="on" if ctx.cuda_graphs else "off").__enter__()
        return lambda: scorer(loader)

    def plain() -> Callable[[], torch.Tensor]:
        model = build(ctx).eval()

        def call() -> torch.Tensor:
            with torch.no_grad():
                return bits_per_dim(model.log_prob(x), x[0].numel())
        return call

    return Workload(images=batch, variants={FAST: fast, BASE: plain},
                    detail=f"{detail}, batch {batch}, eval mode, no gradients", baseline=PLAIN)
