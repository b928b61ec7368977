"""Polyak averaging of the weights (the TF code's ``ExponentialMovingAverage(decay=0.9995)``).

``ema = decay * ema + (1 - decay) * w`` after every optimizer step, starting from the initial weights (after
data-dependent init or loading).  The averaged copy is what the TF code evaluates and samples with; it is kept as a
separate module so evaluation, sampling and checkpoints use it directly.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An exponential moving average of ``model``'s parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float = 0.9995):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema = list(self.model.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
