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

The device half of an update (:meth:`EMA.apply`) reads its weight from a 0-dim device tensor, so that a captured
CUDA graph sees the current weight at every replay.  ``torch._foreach_lerp_`` takes such a weight only as a list of
0-dim tensors, which the CUDA multi-tensor kernel refuses (its fast path wants every list's tensors of one shape):
it falls back to one ``lerp`` kernel per parameter (567 per step for the paper's PixelCNN++).  On CUDA the update
is therefore :func:`fused_lerp_`, ``ema += weight * (w - ema)`` as three multi-tensor kernels (sub, mul by the
0-dim tensor, add); that is ``lerp``'s own formula for weights below 0.5, rounded once more (the product), so it is
within one ulp of ``lerp`` wherever ``|weight * (w - ema)|`` is small against ``|ema|``, as between averaged and
trained weights (``tests/test_cuda_graph.py``).  The first debiased update (weight 1) copies ``w`` exactly on every
device.  CPUs keep ``_foreach_lerp_`` (there every foreach op loops over the tensors anyway), so CPU runs are
bit-identical to before.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


FUSED_DEVICE_TYPES = frozenset({"cuda"})   # where the update runs as multi-tensor kernels (fused_lerp_)


def fused_lerp_(ema: list[torch.Tensor], weights: list[torch.Tensor], weight: torch.Tensor) -> None:
    """``ema[i] += weight * (weights[i] - ema[i])`` for every ``i``, ``weight`` a 0-dim device tensor: three
    multi-tensor kernels on CUDA (no host value, so it can be captured)."""
    delta = torch._foreach_sub(weights, ema)
    torch._foreach_mul_(delta, weight)
    torch._foreach_add_(ema, delta)


class EMA:
    """An exponential moving average of ``model``'s parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float = 0.9995, debias: bool = False):
        self.decay = decay
        self.debias = debias
        self.updates = 0
        self._weight: torch.Tensor | None = None     # the captured update's weight (see advance)
        self._host_weight = 0.0
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
        self._host_weight = self.weight()
        self._weight.fill_(self._host_weight)
        self.updates += 1

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Device half of an update: ``ema = lerp(ema, w, weight)`` with the weight :meth:`advance` set (no host
        values, so it can be captured); on CUDA as :func:`fused_lerp_` (see the module docstring).  Weight 1, the
        debiased first update, gives ``w`` exactly (outside a capture, where it happens: the first steps are
        eager warm-up steps)."""
        ema = list(self.model.parameters())
        weights = [p.detach() for p in model.parameters()]
        if self._weight.device.type not in FUSED_DEVICE_TYPES:
            torch._foreach_lerp_(ema, weights, [self._weight] * len(ema))
        elif self._host_weight == 1.0 and not (self._weight.is_cuda and torch.cuda.is_current_stream_capturing()):
            torch._foreach_copy_(ema, weights)
        else:
            fused_lerp_(ema, weights, self._weight)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, updates: int = 0) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
