"""Weight normalisation (Salimans & Kingma 2016) as PixelCNN++ uses it: ``w = g * v / ||v||`` per output channel.

:class:`WeightNormLayer` holds ``weight_v``, ``weight_g`` (one gain per *output* channel, as in the TF code) and
``bias``, and computes the normalised weight once per forward call.  :func:`frozen_weights` computes every layer's
weight once and reuses it across many forward passes (sampling, scoring).  :func:`data_dependent_init` is the TF
code's initialisation: ``v ~ N(0, 0.05)``, then on one batch each layer in turn sets ``g = init_scale / std`` and
``b = -mean * g`` of its pre-activations, so that every layer starts with zero-mean, ``init_scale``-std outputs.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Iterator

import torch
import torch.nn as nn


class WeightNormLayer(nn.Module, abc.ABC):
    """Base class: ``weight_v`` of ``v_shape``, ``weight_g`` and ``bias`` of size ``out`` (dim ``out_dim`` of v)."""

    def __init__(self, v_shape: tuple[int, ...], out_dim: int, init_scale: float = 1.0):
        super().__init__()
        out = v_shape[out_dim]
        self.out_dim = out_dim
        self.init_scale = init_scale
        self.weight_v = nn.Parameter(torch.empty(v_shape))
        self.weight_g = nn.Parameter(torch.empty(out))
        self.bias = nn.Parameter(torch.empty(out))
        self._frozen: torch.Tensor | None = None
        self._init_pending = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default conv/linear initialisation of ``v`` and ``bias``; ``g = ||v||`` (so ``w = v``),
        which is what ``torch.nn.utils.weight_norm`` produces on a freshly built layer (the port's init)."""
        fan_in = self.weight_v.shape[1] * self.weight_v[0, 0].numel()   # PyTorch's convention, also for deconvs
        nn.init.kaiming_uniform_(self.weight_v, a=5 ** 0.5)
        bound = 1.0 / fan_in ** 0.5
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(self._v_norm())

    def _norm_dims(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.weight_v.dim()) if d != self.out_dim)

    def _v_norm(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.weight_v, dim=self._norm_dims())

    def _broadcast(self, t: torch.Tensor) -> torch.Tensor:
        shape = [1] * self.weight_v.dim()
        shape[self.out_dim] = -1
        return t.view(shape)

    def weight(self) -> torch.Tensor:
        """The normalised weight ``g * v / ||v||`` (or the frozen one inside :func:`frozen_weights`)."""
        if self._frozen is not None:
            return self._frozen
        # the fused kernel behind torch.nn.utils.weight_norm: faster than the composite v * (g / ||v||) on CPUs
        return torch._weight_norm(self.weight_v, self._broadcast(self.weight_g), self.out_dim)

    @abc.abstractmethod
    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The layer's linear map (a convolution) with the given weight and bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._init_pending:
            return self._data_init(x)
        return self.apply_weight(x, self.weight(), self.bias)

    @torch.no_grad()
    def _data_init(self, x: torch.Tensor) -> torch.Tensor:
        self._init_pending = False
        t = self.apply_weight(x, self.weight_v / self._broadcast(self._v_norm()), None)
        dims = [d for d in range(t.dim()) if d != 1]
        mean, var = t.mean(dim=dims), t.var(dim=dims, unbiased=False)
        scale = self.init_scale / torch.sqrt(var + 1e-10)
        self.weight_g.copy_(scale)
        self.bias.copy_(-mean * scale)
        view = [1, -1] + [1] * (t.dim() - 2)
        return (t - mean.view(view)) * scale.view(view)


def weight_norm_layers(model: nn.Module) -> Iterator[WeightNormLayer]:
    return (m for m in model.modules() if isinstance(m, WeightNormLayer))


@contextlib.contextmanager
def frozen_weights(model: nn.Module) -> Iterator[None]:
    """Compute each normalised weight once (detached) and reuse it until the block exits: for gradient-free loops
    such as sampling (H*W forward passes) or scoring a data set."""
    layers = list(weight_norm_layers(model))
    try:
        with torch.no_grad():
            for m in layers:
                m._frozen = m.weight().detach()
        yield
    finally:
        for m in layers:
            m._frozen = None


@torch.no_grad()
def data_dependent_init(model: nn.Module, x: torch.Tensor) -> None:
    """The TF code's data-dependent initialisation of every weight-normalised layer, from one batch ``x``.

    Runs ``model(x)`` once in training mode (dropout on, as the TF init pass) with each layer normalising its own
    pre-activations the first time it is called.
    """
    layers = list(weight_norm_layers(model))
    was_training = model.training
    for m in layers:
        m.weight_v.normal_(0.0, 0.05)
        m._init_pending = True
    try:
        model.train()
        model(x)
    finally:
        for m in layers:
            m._init_pending = False
        model.train(was_training)
