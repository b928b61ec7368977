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
        self._weight: torch.Tensor | None = None     # the captured update's weight (see advance)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def weight(self) -> float:
        """The weight of the newest model in the next update."""
        t = self.updates + 1
        return (1.0 - self.decay) / (1.0 - self.decay ** t) if self.debias else 1.0 - self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One update after an optimizer step: :meth:`advance`, then :meth:`apply` -- the same two halves a
        captured CUDA graph runs, so eager and graph-captured runs average identically."""
        self.advance()
        self.apply(model)

    def advance(self) -> None:
        """Host half of an update: put the next update's weight in a device tensor and count the update;
        :meth:`apply` then reads it (inside a captured graph a float would be frozen at capture, and the debiased
        weight changes every step)."""
        if self._weight is None:
            p = next(self.model.parameters())
            self._weight = torch.zeros((), device=p.device, dtype=p.dtype)
        self._weight.fill_(self.weight())
        self.updates += 1

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Device half of an update: ``ema = lerp(ema, w, weight)`` with the weight :meth:`advance` set (no host
        values, so it can be captured; weight 1, the debiased first update, gives ``w`` exactly)."""
        ema = list(self.model.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], [self._weight] * len(ema))
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, updates: int = 0) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
