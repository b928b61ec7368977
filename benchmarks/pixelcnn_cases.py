"""PixelCNN++ cases: training steps (small and paper config), the OE fine-tuning step, the DMOL loss alone and
bpd scoring, each done by the suite (:mod:`density_oe`) and by the pclucas14/pixel-cnn-pp port's own code
(:mod:`benchmarks.port`: loaded at run time, unmodified but for the two CPU patches its README names).

The port is the code the OE paper's authors used, so it is the baseline of every PixelCNN++ case.  The OE step and
scoring need one log-likelihood per image, which the port's loss cannot give (it sums over the batch).  There the
baseline is the port's model with the suite's per-image likelihood (:func:`density_oe.pixelcnn.dmol.log_prob`), so
those two cases compare the networks.

Both variants get the same Adam hyperparameters (lr 1e-3, betas 0.95/0.9995), weights from the same seed and the
same random 8-bit images.  Each runs its own code as written: the suite's trainer uses fused Adam and
``zero_grad(set_to_none=True)``; the port's ``main.py`` uses ``torch.optim.Adam`` with its defaults and
``zero_grad()``.  Dropout is the suite's element-wise dropout 0.5 (as the TF code) against the port's hard-coded
channel-wise ``Dropout2d(0.5)``, which draws 1/(H*W) as many random numbers: a difference of the port, measured as
it is.  A training step is ``zero_grad``, forward, loss, backward, ``optimizer.step()``; the EMA update and data
loading are left out of both.  Under ``--amp bf16`` the suite runs its network under bf16 autocast (likelihood in
float32) and the port runs in float32: the bf16 targets compare the suite's bf16 with the port's float32.
``--compile`` runs the suite's model and (in the train steps) its DMOL likelihood through ``torch.compile``.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from density_oe.pixelcnn.dmol import log_prob
from density_oe.losses import oe_density_loss
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.scorer import Scorer, score_dataset
from density_oe.units import bits_per_dim
from oe_core.data.transforms import to_unit_range

from oe_core.run.cuda_graph import StepGraph, TensorLR

from .port import build_port_model
from .sizes import PixelCNNShape
from .workload import BASE, FAST, BenchContext, Workload, register_case

ADAM = dict(lr=1e-3, betas=(0.95, 0.9995))
DROPOUT = 0.5
NR_MIX = 10
OE_MARGIN, OE_LAMBDA = 1.0, 1.0  # density_oe's defaults: margin 1 bit/dim, weight 1
PORT = "pclucas14 port"
PORT_PER_IMAGE = "pclucas14 port model, the suite's per-image likelihood"


def fast_model(ctx: BenchContext, shape: PixelCNNShape) -> PixelCNNpp:
    torch.manual_seed(ctx.seed)
    cfg = PixelCNNConfig(nr_resnet=shape.nr_resnet, nr_filters=shape.nr_filters, nr_logistic_mix=NR_MIX,
                      dropout=DROPOUT)
    return PixelCNNpp(cfg).to(ctx.device, memory_format=ctx.memory_format)


def _maybe_compiled(ctx: BenchContext, model: torch.nn.Module) -> torch.nn.Module:
    return torch.compile(model) if ctx.compile else model


def _fused_adam(ctx: BenchContext, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The density trainer's optimizer: Adam, one fused kernel per step on CPUs and CUDA."""
    return torch.optim.Adam(model.parameters(), **ADAM, fused=ctx.device.type in ("cpu", "cuda"))


def port_model(ctx: BenchContext, shape: PixelCNNShape) -> torch.nn.Module:
    torch.manual_seed(ctx.seed)
    return build_port_model(ctx.require_port(), shape.nr_resnet, shape.nr_filters, NR_MIX).to(ctx.device)


def nll_bpd(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image bits/dim ``[B]`` of ``x`` under the DMOL with parameters ``params``: the density trainer's loss on
    a PixelCNN++ output, as a function of the parameters (so the port's network can be timed with it too)."""
    return bits_per_dim(log_prob(params, x), x[0].numel())


def bpd_train_step(net: Callable, opt: torch.optim.Optimizer, lrs: "TensorLR | None",
                   autocast: Callable, loss_fn: Callable = nll_bpd) -> Callable[[torch.Tensor], torch.Tensor]:
    """One step on the mean bits/dim of a [-1, 1] batch: forward under ``autocast()``, DMOL loss (``loss_fn``: the
    compiled one with ``--compile``), backward, Adam (with the learning rate of ``lrs`` when the step is captured
    as a CUDA graph)."""
    def step(x: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with autocast():
            params = net(x)
        loss = loss_fn(params, x).mean()
        loss.backward()
        with lrs.for_step() if lrs is not None else contextlib.nullcontext():
            opt.step()
        return loss.detach()
    return step


def train_step_and_graph(ctx: BenchContext, shape: PixelCNNShape, batch: int) -> tuple[Callable[[], torch.Tensor],
                                                                                        Callable]:
    """One training step of the suite's model on the mean bits/dim (``--cuda-graphs``: captured whole, as the
    trainer does on CUDA, with the learning rate as a device tensor), and the step it calls (the
    :class:`StepGraph` when captured, which ``benchmarks.gpu_speed`` asks whether capture happened)."""
    model = fast_model(ctx, shape).train()
    opt = _fused_adam(ctx, model)
    lrs = TensorLR(opt, ctx.device) if ctx.cuda_graphs else None
    net = _maybe_compiled(ctx, model)
    x = ctx.images(batch).contiguous(memory_format=ctx.memory_format)

    # --compile: the likelihood too (its traced path), as the trainer's --compile does
    step = bpd_train_step(net, opt, lrs, ctx.autocast, torch.compile(nll_bpd) if ctx.compile else nll_bpd)
    graphed = StepGraph(step, ctx.device, name="benchmark train step") if ctx.cuda_graphs else step
    return (lambda: graphed(x)), graphed


def fast_train_step(ctx: BenchContext, shape: PixelCNNShape, batch: int) -> Callable[[], torch.Tensor]:
    """:func:`train_step_and_graph`'s step."""
    return train_step_and_graph(ctx, shape, batch)[0]


def port_train_step(ctx: BenchContext, shape: PixelCNNShape, batch: int) -> Callable[[], torch.Tensor]:
    """One training step as the port's ``main.py`` does it: its loss summed over the batch, in float32."""
    model = port_model(ctx, shape).train()
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    loss_fn = ctx.require_port().loss
    x = ctx.images(batch)

    def step() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(x, model(x))
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def _train_case(ctx: BenchContext, which: str, batch: int) -> Workload:
    shape = ctx.sizes.shape(which)
    return Workload(images=batch, variants={FAST: lambda: fast_train_step(ctx, shape, batch),
                                            BASE: lambda: port_train_step(ctx, shape, batch)},
                    detail=f"{shape.label()}, K={NR_MIX}, batch {batch}, {ctx.sizes.image}x{ctx.sizes.image}",
                    baseline=PORT)


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

    def fast() -> Callable[[], torch.Tensor]:
        model = fast_model(ctx, shape).train()
        opt = _fused_adam(ctx, model)
        net = _maybe_compiled(ctx, model)
        x = both.contiguous(memory_format=ctx.memory_format)

        def call() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with ctx.autocast():
                params = net(x)
            bpd = nll_bpd(params, x)
            loss = oe_density_loss(bpd[:n], bpd[n:], OE_MARGIN, OE_LAMBDA)
            loss.backward()
            opt.step()
            return loss.detach()
        return call

    def port_way() -> Callable[[], torch.Tensor]:
        model = port_model(ctx, shape).train()
        opt = torch.optim.Adam(model.parameters(), **ADAM)

        def call() -> torch.Tensor:
            opt.zero_grad()
            bpd = nll_bpd(model(both), both)
            loss = oe_density_loss(bpd[:n], bpd[n:], OE_MARGIN, OE_LAMBDA)
            loss.backward()
            opt.step()
            return loss.detach()
        return call

    return Workload(images=2 * n, variants={FAST: fast, BASE: port_way},
                    detail=f"{shape.label()}, {n} in + {n} outliers, NLL + margin ranking loss (bits/dim)",
                    baseline=PORT_PER_IMAGE)


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

    def port_way() -> Callable[[], torch.Tensor]:
        params = base.clone().requires_grad_(True)
        loss_fn = ctx.require_port().loss

        def call() -> torch.Tensor:
            params.grad = None
            loss = loss_fn(x, params)
            loss.backward()
            return loss.detach()
        return call

    return Workload(images=batch, variants={FAST: fast, BASE: port_way},
                    detail=f"K={NR_MIX}, batch {batch}, {ctx.sizes.image}x{ctx.sizes.image}, float32", baseline=PORT)


def uint8_loader(images: torch.Tensor, batch_size: int) -> DataLoader:
    """A loader of ``(uint8 images, 0)`` batches, in order, in the main process (what a dataset's loader yields)."""
    return DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=batch_size)


@register_case("score", "PixelCNN++ bpd scoring, paper config", order=50)
def score(ctx: BenchContext) -> Workload:
    """One batch: the suite's ``density_oe.scorer.score_dataset`` (uint8 batch in, float64 bpd out) against the
    port's model in eval mode under ``no_grad`` with the suite's per-image likelihood, on the [-1, 1] batch."""
    shape, batch = ctx.sizes.paper, ctx.sizes.score_batch
    images = ctx.uint8_images(batch)
    x = to_unit_range(images.to(ctx.device))

    def fast() -> Callable[[], np.ndarray]:
        model, loader = fast_model(ctx, shape).eval(), uint8_loader(images, batch)
        if not (ctx.compile or ctx.cuda_graphs):
            return lambda: score_dataset(model, loader, ctx.device, ctx.amp, ctx.memory_format)
        # one scorer for every call: the compiled network and the captured graph are built once, as when
        # score_dataset scores a whole data set
        scorer = Scorer(model, ctx.device, ctx.amp, ctx.memory_format, ctx.compile,
                        "on" if ctx.cuda_graphs else "off").__enter__()
        return lambda: scorer(loader)

    def port_way() -> Callable[[], torch.Tensor]:
        model = port_model(ctx, shape).eval()

        def call() -> torch.Tensor:
            with torch.no_grad():
                return nll_bpd(model(x), x)
        return call

    return Workload(images=batch, variants={FAST: fast, BASE: port_way},
                    detail=f"{shape.label()}, batch {batch}, eval mode, no gradients", baseline=PORT_PER_IMAGE)
