"""``python -m density_oe.score``: per-image bits/dim of a registered dataset under a trained density model
(PixelCNN++, Glow or diffusion; the architecture is read from the checkpoint).

The OOD score of the paper (BPP): higher bits/dim = more anomalous.  Writes one value per image, in dataset order,
to ``--out``: ``.npy`` (float64 array) or ``.csv`` (``index,bpd`` rows).  Scoring runs in eval mode under
``torch.inference_mode`` with every weight normalised once (:func:`~density_oe.pixelcnn.weight_norm.frozen_weights`);
``--amp bf16`` runs the network in bfloat16 and the likelihood in float32.  Glow's bits/dim use one fixed
dequantisation draw (:mod:`density_oe.glow.model`) and the diffusion's bound draws fixed by each image's content
(:mod:`density_oe.diffusion.draws`), so scores are deterministic and do not depend on the batch.
"""
from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from oe_core.cli_config import help_field, parse_config, require
from oe_core.data import open_dataset
from oe_core.data.registry import takes_size
from oe_core.data.resized import RESIZE_NAME, Resized
from oe_core.data.transforms import to_unit_range
from oe_core.errors import cli_main
from oe_core.outputs import check_writable_file
from oe_core.progress import progress_bar
from oe_core.run import autocast, resolve_device
from oe_core.run.engine import compile_with_fallback
from oe_core.run.cuda_graph import StepGraph, resolve_cuda_graphs
from oe_core.atomic import atomic_write_bytes

from .archs import arch_for_model
from .pixelcnn import frozen_weights
from .shapes import image_shape
from .units import bits_per_dim
from .weights import image_size_for, load_density_model

OUT_SUFFIXES = (".npy", ".csv")


@dataclass
class ScoreConfig:
    """Score every image of a dataset with a density model: per-image bits/dim (higher = more anomalous)."""

    ckpt: str = help_field("", "density run folder or checkpoint (its EMA weights), or a pclucas14/pixel-cnn-pp "
                               ".pth file")
    dataset: str = help_field("cifar10", "registered dataset to score (see `python -m oe_core.data`)")
    split: str = help_field("", "split to score (empty: the dataset's default split)")
    out: str = help_field("", "output file: .npy (float64 array) or .csv (index,bpd)")
    data_root: str = help_field("", "folder holding the datasets (not needed for generated and mini-* sets)")
    download: bool = help_field(False, "download datasets torchvision can download into --data-root")
    image_size: int = help_field(0, "image side to score at (0: the size the model was trained at, recorded in its "
                                    "checkpoint); generated sets are built at it, others are resized to it")
    force_size: bool = help_field(False, "allow an --image-size other than the model's training size")
    limit: int = help_field(0, "score only the first N images (0: all)")
    weights: str = help_field("eval", "eval: the run's EMA weights; train: its raw training weights",
                              choices=("eval", "train"))
    batch_size: int = help_field(64, "images per forward pass")
    device: str = help_field("auto", "cpu, cuda, cuda:N or auto")
    amp: str = help_field("none", "bf16: network in bfloat16, likelihood in float32", choices=("none", "bf16"))
    channels_last: bool = help_field(False, "run the network in the channels_last memory format")
    compile: bool = help_field(False, "run the network through torch.compile")
    cuda_graphs: str = help_field("auto", "capture each full-size batch (network and likelihood) as one CUDA graph "
                                          "and replay it; auto: on CUDA", choices=("auto", "on", "off"))
    num_workers: int = help_field(2, "DataLoader worker processes")
    progress: bool = help_field(True, "show a progress bar")

    def validate(self) -> None:
        require(bool(self.ckpt), "--ckpt must name a density run, checkpoint or .pth file")
        require(Path(self.out).suffix in OUT_SUFFIXES, f"--out must end in {' or '.join(OUT_SUFFIXES)}, "
                                                       f"got {self.out!r}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(self.limit >= 0 and self.num_workers >= 0, "--limit and --num-workers must be >= 0")


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
        return bits_per_dim(self.model.log_prob(x, out=out), x[0].numel())

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


def dataset_at(cfg: ScoreConfig, size: Optional[tuple[int, int]]) -> tuple[Dataset, str]:
    """The dataset of ``cfg`` at ``size`` (None: its own) and a note on how it got there ("" when as stored)."""
    opts = dict(root=cfg.data_root, download=cfg.download)
    if size is not None and takes_size(cfg.dataset) and size[0] == size[1]:
        return open_dataset(cfg.dataset, cfg.split or None, size=size[0], **opts), f" built at {size[0]}x{size[1]}"
    ds = open_dataset(cfg.dataset, cfg.split or None, **opts)
    native = tuple(ds[0][0].shape[-2:])
    if size is None or native == tuple(size):
        return ds, ""
    return Resized(ds, size), f" resized from {native[0]}x{native[1]} to {size[0]}x{size[1]} ({RESIZE_NAME})"


def write_scores(path: Path, scores: np.ndarray) -> None:
    if path.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, scores)
        atomic_write_bytes(path, buf.getvalue())
    else:
        rows = "".join(f"{i},{s:.8g}\n" for i, s in enumerate(scores))
        atomic_write_bytes(path, ("index,bpd\n" + rows).encode())


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(ScoreConfig, argv, prog="python -m density_oe.score")
    check_writable_file(cfg.out)
    model, model_cfg = load_density_model(cfg.ckpt, weights=cfg.weights)
    arch = arch_for_model(model)
    size = image_size_for(model, cfg.image_size, cfg.force_size)
    ds, note = dataset_at(cfg, size)
    image_shape(ds, cfg.dataset, arch.multiple(model_cfg), arch.display)
    if cfg.limit:
        ds = Subset(ds, range(min(cfg.limit, len(ds))))
    device = resolve_device(cfg.device)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda")
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    with Scorer(model, device, cfg.amp, fmt, cfg.compile, cfg.cuda_graphs) as scorer:
        scores = scorer(loader, cfg.progress)
    write_scores(Path(cfg.out), scores)
    graph = "" if scorer.last_graph_status == "off" else f" (CUDA graph: {scorer.last_graph_status})"
    print(f"{cfg.dataset}: {len(scores)} images{note}, mean {scores.mean():.4f} bits/dim -> {cfg.out}{graph}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
