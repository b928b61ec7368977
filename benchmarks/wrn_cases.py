"""The WRN-40-2 OE step (128 in-distribution + 256 outlier images in one forward pass), the suite's way
(:mod:`classifiers_oe`: ``build_model``, ``oe_loss``, the trainer's SGD settings and ``zero_grad(set_to_none=True)``,
optionally channels_last) and the plain way (the OE reference's ``oe_tune.py`` loop body, loss written inline).

Both take the same normalised float batch; the trainer's on-device crop/flip augmentation and the reference's
DataLoader augmentation are left out of both.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from classifiers_oe.losses import oe_loss
from classifiers_oe.models import build_model

from .workload import FAST, BASE, BenchContext, Workload, register_case

NUM_CLASSES = 10
SGD = dict(lr=0.001, momentum=0.9, nesterov=True, weight_decay=5e-4)  # oe_tune's settings


def _wrn(ctx: BenchContext) -> torch.nn.Module:
    torch.manual_seed(ctx.seed)
    return build_model("wrn", NUM_CLASSES, depth=ctx.sizes.wrn_depth, widen_factor=2, dropout=0.3).to(ctx.device)


@register_case("wrn_oe_step", "WRN-40-2 OE step (in + outliers)", order=60, needs_port=False)
def wrn_oe_step(ctx: BenchContext) -> Workload:
    n_in, n_out = ctx.sizes.wrn_batch
    s = ctx.sizes.image
    g = ctx.generator(3)
    x_in = torch.randn(n_in, 3, s, s, generator=g).to(ctx.device)
    x_out = torch.randn(n_out, 3, s, s, generator=g).to(ctx.device)
    y = torch.randint(0, NUM_CLASSES, (n_in,), generator=g).to(ctx.device)

    def fast() -> Callable[[], torch.Tensor]:
        model = _wrn(ctx).train().to(memory_format=ctx.memory_format)
        opt = torch.optim.SGD(model.parameters(), **SGD)

        def call() -> torch.Tensor:
            with ctx.autocast():
                logits = model(torch.cat([x_in, x_out]).contiguous(memory_format=ctx.memory_format))
            loss = oe_loss(logits[:n_in], y, logits[n_in:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
        return call

    def plain_way() -> Callable[[], torch.Tensor]:
        model = _wrn(ctx).train()
        optimizer = torch.optim.SGD(model.parameters(), **SGD)

        def call() -> torch.Tensor:
            data = torch.cat((x_in, x_out), 0)
            with ctx.autocast():
                x = model(data).float()
            optimizer.zero_grad()
            loss = F.cross_entropy(x[:len(x_in)], y)
            loss += 0.5 * -(x[len(x_in):].mean(1) - torch.logsumexp(x[len(x_in):], dim=1)).mean()
            loss.backward()
            optimizer.step()
            return loss.detach()
        return call

    return Workload(images=n_in + n_out, variants={FAST: fast, BASE: plain_way},
                    detail=f"WRN-{ctx.sizes.wrn_depth}-2, {n_in} in + {n_out} outliers, {s}x{s}, SGD (Nesterov)",
                    baseline="OE reference loop")
