"""Per-image bits/dim of uint8 image batches under a density model: :class:`Scorer` and :func:`score_dataset`,
the library behind ``python -m density_oe.score`` (and the VAE bound gap, the benchmarks).

Scoring runs in eval mode under ``torch.inference_mode`` with every weight normalised once
(:func:`~density_oe.pixelcnn.weight_norm.frozen_weights`); ``amp="bf16"`` runs the network in bfloat16 and the
likelihood in float32.  The bits/dim come from :func:`density_oe.units.model_bits_per_dim`, the route every
density detector takes too, so a score file and the evaluation's ``bpd`` detector agree image by image.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from oe_core.data.transforms import to_unit_range
from oe_core.progress import progress_bar
from oe_core.run import autocast
from oe_core.run.cuda_graph import StepGraph, resolve_cuda_graphs
from oe_core.run.engine import compile_with_fallback

from .pixelcnn import frozen_weights
from .units import model_bits_per_dim


class Scorer:
    """Per-image bits/dim of uint8 image batches under ``model`` in eval mode, with every weight normalised once
    for the scorer's life (``with Scorer(...) as scorer: scorer(loader)``).

    ``compile``: the network through ``torch.compile``; ``cuda_graphs`` (``auto``/``on``/``off``): on CUDA, one
    batch (network and likelihood) captured as a CUDA graph after a warm-up batch and replayed for every batch of
    the same shape (a last partial batch runs eagerly; :mod:`oe_core.run.cuda_graph`).  The graph reads the
    normalised weights of this scorer, so it lives no longer than the ``with`` block."""

    def __init__(self, model: torch.nn.Module, device: torch.device, amp: str = "none",
                 memory_format: torch.memory_format = torch.contiguous_format, compile: bool = False,
                 cuda_graphs: str = "off"):
        self.model = model.to(device, memory_format=memory_format).eval()
        self.device, self.amp, self.memory_format = device, amp, memory_format
        self.net = compile_with_fallback(self.model) if compile else self.model
        self.use_graphs = resolve_cuda_graphs(cuda_graphs, device)
        self._frozen: Optional[contextlib.AbstractContextManager] = None
        self._step = None
        self.last_graph_status = "off"

    def __enter__(self) -> "Scorer":
        self._frozen = frozen_weights(self.model)
        self._frozen.__enter__()
        self._step = StepGraph(self._bpd, self.device, warmup=1, name="scoring batch") if self.use_graphs \
            else self._bpd
        return self

    @property
    def graph_status(self) -> str:
        """``captured``, ``warming up``, ``eager: <why>`` (capture failed) or ``off`` (no graphs asked for)."""
        return self._step.status if isinstance(self._step, StepGraph) else "off"

    def __exit__(self, *exc) -> None:
        self.last_graph_status = self.graph_status
        self._step = None
        if self._frozen is not None:
            self._frozen.__exit__(*exc)
            self._frozen = None

    def _bpd(self, images: torch.Tensor) -> torch.Tensor:
        x = to_unit_range(images)
        with autocast(self.device, self.amp):
            out = self.net(x.contiguous(memory_format=self.memory_format))
        return model_bits_per_dim(self.model, x, out)

    @torch.inference_mode()
    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """bits/dim (float64, on the CPU) of one uint8 batch."""
        if self._step is None:
            raise RuntimeError("Scorer.batch outside its with block")
        if not isinstance(self._step, StepGraph):
            images = images.to(self.device)
        return self._step(images).double().cpu()     # a graph copies the (pinned) batch into its buffer once

    def __call__(self, loader: DataLoader, progress: bool = False) -> np.ndarray:
        return torch.cat([self.batch(x) for x, _ in progress_bar(loader, "scoring", progress)]).numpy()


def score_dataset(model: torch.nn.Module, loader: DataLoader, device: torch.device, amp: str = "none",
                  memory_format: torch.memory_format = torch.contiguous_format, progress: bool = False,
                  compile: bool = False, cuda_graphs: str = "off") -> np.ndarray:
    """Per-image bits/dim (float64 array, in loader order) of uint8 batches ``(x, target)`` from ``loader``
    (:class:`Scorer`: eval mode, ``inference_mode``, weights normalised once; optional compile and CUDA graphs)."""
    with Scorer(model, device, amp, memory_format, compile, cuda_graphs) as scorer:
        return scorer(loader, progress)
