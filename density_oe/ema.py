"""Polyak averaging of the weights (the TF code's ``ExponentialMovingAverage(decay=0.9995)``).

``ema = decay * ema + (1 - decay) * w`` after every optimizer step, starting from the initial weights (after
data-dependent init or loading).  The averaged copy is what the TF code evaluates and samples with; it is kept as a
separate module so evaluation, sampling and checkpoints use it directly.

``debias=True`` is the zero-debiased average (as Adam's moments): after ``t`` updates it is
``sum_s (1 - decay) decay^(t-s) w_s / (1 - decay^t)``, i.e. ``ema += (w - ema) * (1 - decay) / (1 - decay^t)``.
It holds none of the starting weights (the first update copies ``w_1``).  The plain average keeps ``decay^t`` of
them, which is what the OE fine-tune must avoid: it starts from the pre-OE model (see ``density_oe/README.md``).
``decay = 0`` is no averaging (a copy of the trained weights); the trainer then keeps no copy at all and evaluates
and saves the trained weights themselves.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An exponential moving average of ``model``'s parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float = 0.9995, debias: bool = False):
        self.decay = decay
        self.debias = debias
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def weight(self) -> float:
        """The weight of the newest model in the next update."""
        t = self.updates + 1
        return (1.0 - self.decay) / (1.0 - self.decay ** t) if self.debias else 1.0 - self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema = list(self.model.parameters())
        new = [p.detach() for p in model.parameters()]
        w = self.weight()
        if w >= 1.0:
            torch._foreach_copy_(ema, new)
        else:
            torch._foreach_lerp_(ema, new, w)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, updates: int = 0) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
