"""PixelCNN++ cases: training steps (small and paper config), the OE fine-tuning step, the DMOL loss alone and
bpd scoring, each done by the suite (:mod:`density_oe`) and the plain way (:mod:`benchmarks.plain_pixelcnn`).

Both variants do the same work with the same settings: the TF recipe's Adam (lr 1e-3, betas 0.95/0.9995),
element-wise dropout 0.5, weights initialised as the port does (PyTorch defaults, ``g = ||v||``) from the same
seed, and the same random 8-bit images.  A training step is ``zero_grad``, forward, loss, backward,
``optimizer.step()``; the EMA update and data loading are left out of both.  Under ``--amp bf16`` both run the
network under autocast and the likelihood in float32 (the plain loss gets ``params.float()``).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from density_oe.dmol import log_prob, nll_bpd
from density_oe.losses import oe_density_loss
from density_oe.model import ModelConfig, PixelCNNpp
from density_oe.score import score_dataset
from oe_core.data.transforms import to_unit_range

from . import plain_pixelcnn as plain
from .sizes import PixelCNNShape
from .workload import FAST, PLAIN, BenchContext, Workload, register_case

ADAM = dict(lr=1e-3, betas=(0.95, 0.9995))
DROPOUT = 0.5
NR_MIX = 10
OE_MARGIN, OE_LAMBDA = 1.0, 1.0  # density_oe's defaults: margin 1 bit/dim, weight 1


def fast_model(ctx: BenchContext, shape: PixelCNNShape) -> PixelCNNpp:
    torch.manual_seed(ctx.seed)
    cfg = ModelConfig(nr_resnet=shape.nr_resnet, nr_filters=shape.nr_filters, nr_logistic_mix=NR_MIX,
                      dropout=DROPOUT)
    return PixelCNNpp(cfg).to(ctx.device, memory_format=ctx.memory_format)


def plain_model(ctx: BenchContext, shape: PixelCNNShape) -> plain.PlainPixelCNN:
    torch.manual_seed(ctx.seed)
    return plain.PlainPixelCNN(shape.nr_resnet, shape.nr_filters, NR_MIX, DROPOUT).to(ctx.device)


def fast_train_step(ctx: BenchContext, shape: PixelCNNShape, batch: int) -> Callable[[], torch.Tensor]:
    """One training step of the suite's model on the mean bits/dim."""
    model = fast_model(ctx, shape).train()
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    x = ctx.images(batch).contiguous(memory_format=ctx.memory_format)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with ctx.autocast():
            params = model(x)
        loss = nll_bpd(params, x).mean()
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def plain_train_step(ctx: BenchContext, shape: PixelCNNShape, batch: int) -> Callable[[], torch.Tensor]:
    """One training step as the port writes it (loss summed over the batch in nats)."""
    model = plain_model(ctx, shape).train()
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    x = ctx.images(batch)

    def step() -> torch.Tensor:
        opt.zero_grad()
        with ctx.autocast():
            output = model(x)
        loss = plain.discretized_mix_logistic_loss(x, output.float())
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def _train_case(ctx: BenchContext, which: str, batch: int) -> Workload:
    shape = ctx.sizes.shape(which)
    return Workload(images=batch, variants={FAST: lambda: fast_train_step(ctx, shape, batch),
                                            PLAIN: lambda: plain_train_step(ctx, shape, batch)},
                    detail=f"{shape.label()}, K={NR_MIX}, batch {batch}, {ctx.sizes.image}x{ctx.sizes.image}")


@register_case("train_small", "PixelCNN++ train step, small config", order=10)
def train_small(ctx: BenchContext) -> Workload:
    return _train_case(ctx, "small", ctx.sizes.small_batch)


@register_case("train_paper", "PixelCNN++ train step, paper config", order=20)
def train_paper(ctx: BenchContext) -> Workload:
    return _train_case(ctx, "paper", ctx.sizes.paper_batch)


@register_case("oe_step", "PixelCNN++ OE fine-tuning step (in + outliers)", order=30)
def oe_step(ctx: BenchContext) -> Workload:
    """In-distribution and outlier images through one forward pass; ``density_oe.losses.oe_density_loss`` (mean
    in-distribution bpd + margin ranking over all in/outlier pairs) on each variant's per-image bpd."""
    shape = ctx.sizes.shape(ctx.sizes.oe_shape)
    n = ctx.sizes.oe_batch
    both = torch.cat([ctx.images(n, stream=0), ctx.images(n, stream=1)])
    dims = both[0].numel()

    def fast() -> Callable[[], torch.Tensor]:
        model = fast_model(ctx, shape).train()
        opt = torch.optim.Adam(model.parameters(), **ADAM)
        x = both.contiguous(memory_format=ctx.memory_format)

        def call() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with ctx.autocast():
                params = model(x)
            bpd = nll_bpd(params, x)
            loss = oe_density_loss(bpd[:n], bpd[n:], OE_MARGIN, OE_LAMBDA)
            loss.backward()
            opt.step()
            return loss.detach()
        return call

    def plain_way() -> Callable[[], torch.Tensor]:
        model = plain_model(ctx, shape).train()
        opt = torch.optim.Adam(model.parameters(), **ADAM)

        def call() -> torch.Tensor:
            opt.zero_grad()
            with ctx.autocast():
                output = model(both)
            bpd = -plain.discretized_mix_logistic_log_prob(both, output.float()) / (dims * math.log(2.0))
            loss = oe_density_loss(bpd[:n], bpd[n:], OE_MARGIN, OE_LAMBDA)
            loss.backward()
            opt.step()
            return loss.detach()
        return call

    return Workload(images=2 * n, variants={FAST: fast, PLAIN: plain_way},
                    detail=f"{shape.label()}, {n} in + {n} outliers, NLL + margin ranking loss (bits/dim)")


def random_dmol_params(ctx: BenchContext, batch: int) -> torch.Tensor:
    """DMOL parameters ``(batch, 10K, S, S)`` of a plausible scale: unit-normal logits, means and coefficients,
    log-scales around -3 (so all four branches of the likelihood occur)."""
    s = ctx.sizes.image
    params = torch.randn(batch, 10 * NR_MIX, s, s, generator=ctx.generator(2))
    params[:, NR_MIX:].view(batch, 3, 3, NR_MIX, s, s)[:, :, 1] -= 3.0
    return params.to(ctx.device)


@register_case("dmol_loss", "DMOL likelihood alone, forward + backward", order=40)
def dmol_loss(ctx: BenchContext) -> Workload:
    batch = ctx.sizes.loss_batch
    x = ctx.images(batch)
    base = random_dmol_params(ctx, batch)

    def fast() -> Callable[[], torch.Tensor]:
        params = base.clone().requires_grad_(True)

        def call() -> torch.Tensor:
            params.grad = None
            loss = -log_prob(params, x).sum()
            loss.backward()
            return loss.detach()
        return call

    def plain_way() -> Callable[[], torch.Tensor]:
        params = base.clone().requires_grad_(True)

        def call() -> torch.Tensor:
            params.grad = None
            loss = plain.discretized_mix_logistic_loss(x, params)
            loss.backward()
            return loss.detach()
        return call

    return Workload(images=batch, variants={FAST: fast, PLAIN: plain_way},
                    detail=f"K={NR_MIX}, batch {batch}, {ctx.sizes.image}x{ctx.sizes.image}, float32")


def uint8_loader(images: torch.Tensor, batch_size: int) -> DataLoader:
    """A loader of ``(uint8 images, 0)`` batches, in order, in the main process (what a dataset's loader yields)."""
    return DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=batch_size)


@register_case("score", "PixelCNN++ bpd scoring, paper config", order=50)
def score(ctx: BenchContext) -> Workload:
    """One batch: the suite's ``density_oe.score.score_dataset`` (uint8 batch in, float64 bpd out) against the
    port's evaluation (``no_grad``, per-image log-likelihood of a [-1, 1] batch)."""
    shape, batch = ctx.sizes.paper, ctx.sizes.paper_batch
    images = ctx.uint8_images(batch)
    x = to_unit_range(images.to(ctx.device))
    dims = x[0].numel()

    def fast() -> Callable[[], np.ndarray]:
        model, loader = fast_model(ctx, shape).eval(), uint8_loader(images, batch)
        return lambda: score_dataset(model, loader, ctx.device, ctx.amp, ctx.memory_format)

    def plain_way() -> Callable[[], torch.Tensor]:
        model = plain_model(ctx, shape).eval()

        def call() -> torch.Tensor:
            with torch.no_grad():
                with ctx.autocast():
                    output = model(x)
                return -plain.discretized_mix_logistic_log_prob(x, output.float()) / (dims * math.log(2.0))
        return call

    return Workload(images=batch, variants={FAST: fast, PLAIN: plain_way},
                    detail=f"{shape.label()}, batch {batch}, eval mode, no gradients")
