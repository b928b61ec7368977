"""``python -m density_oe.score``: per-image bits/dim of a registered dataset under a trained density model
(PixelCNN++, Glow or diffusion; the architecture is read from the checkpoint).

The OOD score of the paper (BPP): higher bits/dim = more anomalous.  Writes one value per image, in dataset order,
to ``--out``: ``.npy`` (float64 array) or ``.csv`` (``index,bpd`` rows).  The scoring itself is
:class:`density_oe.scorer.Scorer` (eval mode, weights normalised once; ``--amp bf16`` runs the network in bfloat16
and the likelihood in float32).  Glow's bits/dim use one fixed
dequantisation draw (:mod:`density_oe.glow.model`) and the diffusion's bound draws fixed by each image's content
(:mod:`density_oe.diffusion.draws`), so scores are deterministic and do not depend on the batch.
"""
from __future__ import annotations

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
from oe_core.errors import cli_main
from oe_core.outputs import check_writable_file
from oe_core.run import resolve_device
from oe_core.atomic import atomic_write_bytes

from .archs import arch_for_model
from .resize import RESIZE_NAME, Resized
from .scorer import Scorer
from .shapes import image_shape
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
