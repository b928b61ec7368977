"""The data both trainers train on: their shared outlier options (:class:`OutlierOptions`), their one data
set-up (:func:`open_training_data`) and its training stream (:class:`InOutBatches`): in-distribution batches, zipped
with OE outlier batches, built on the resumable samplers (:mod:`oe_core.data.samplers`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..cli_config import help_field
from ..data import open_dataset
from ..data.samplers import OUTLIER_MODES, InBatchSampler, OutlierBatchSampler
from ..errors import DataError
from .task import StepContext


@dataclass
class OutlierOptions:
    """The Outlier Exposure options both trainers share (a base class of both configs): which outlier set and how
    each epoch draws from it.  ``--oe-batch-size`` stays with each trainer, whose defaults differ."""

    outliers: str = help_field("tinyimages80m", "OE outlier dataset (any registered name; the paper uses 80 Million "
                                                "Tiny Images, tinyimages300k is the smaller subset); not used in "
                                                "baseline mode")
    outlier_sampling: str = help_field("block", "block: each epoch reads a contiguous block of outliers from a "
                                                "random offset (the OE reference code); shuffle: a fresh random "
                                                "subset each epoch", choices=OUTLIER_MODES)

    @property
    def uses_outliers(self) -> bool:
        """Every mode of both trainers but ``baseline`` trains with outliers (each config has its ``mode``)."""
        return self.mode != "baseline"  # type: ignore[attr-defined]


def loader_options(num_workers: int, device: torch.device) -> dict:
    """DataLoader options: worker processes kept alive across epochs, pinned memory for GPUs."""
    return dict(num_workers=num_workers, pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)


def check_same_shape(out_set: Dataset, out_name: str, shape: tuple, in_name: str) -> None:
    got = tuple(out_set[0][0].shape)
    if got != tuple(shape):
        raise DataError(f"outlier images of {out_name!r} have shape {got}, the in-distribution images of "
                        f"{in_name!r} {tuple(shape)}")


class InOutBatches:
    """In-distribution batches (global ``batch_size``, shuffled per epoch), zipped with outlier batches (global
    ``oe_batch_size``, ``outlier_sampling``: ``block`` as the reference, or ``shuffle``) if ``outliers`` is given."""

    def __init__(self, train_set: Dataset, batch_size: int, *, seed: int, rank: int, world_size: int,
                 device: torch.device, num_workers: int, drop_last: bool = False,
                 outliers: Optional[Dataset] = None, oe_batch_size: int = 0, outlier_sampling: str = "block"):
        opts = loader_options(num_workers, device)
        self.in_sampler = InBatchSampler(len(train_set), batch_size, seed=seed, shuffle=True, drop_last=drop_last,
                                         rank=rank, world_size=world_size)
        self.in_loader = DataLoader(train_set, batch_sampler=self.in_sampler, **opts)
        self.out_sampler: Optional[OutlierBatchSampler] = None
        self.out_loader: Optional[DataLoader] = None
        if outliers is not None:
            self.out_sampler = OutlierBatchSampler(len(outliers), oe_batch_size, len(self.in_sampler),
                                                   mode=outlier_sampling, seed=seed, rank=rank,
                                                   world_size=world_size)
            self.out_loader = DataLoader(outliers, batch_sampler=self.out_sampler, **opts)

    def __len__(self) -> int:
        return len(self.in_sampler)

    def epoch(self, epoch: int, start_step: int) -> Iterable:
        """Exactly the batches of ``epoch`` from ``start_step`` on, for this rank: ``((x_in, y_in), outliers)``,
        ``outliers`` a batch or ``None``."""
        self.in_sampler.set_epoch(epoch)  # set_epoch resets the start, so set_start comes after it
        self.in_sampler.set_start(start_step)
        if self.out_loader is None:
            return ((batch, None) for batch in self.in_loader)
        self.out_sampler.set_epoch(epoch)
        self.out_sampler.set_start(start_step)
        return zip(self.in_loader, self.out_loader)


def first_image_shape(train_set: Dataset) -> tuple[int, ...]:
    return tuple(train_set[0][0].shape)


@dataclass
class TrainingData:
    """What :func:`open_training_data` opens; ``options``: the run's ``open_dataset`` options, ``loading``: its
    DataLoader options (workers, pinned memory) and test batch size."""

    dataset: str
    train_set: Dataset
    test_set: Dataset
    shape: tuple[int, ...]
    stream: InOutBatches
    test_loader: DataLoader
    options: dict
    loading: dict

    def test_loader_of(self, name: str, images: int) -> DataLoader:
        """A loader like the test loader over the first ``images`` images of another set, ``NAME`` or ``NAME:SPLIT``,
        opened as the training set was and checked to hold images of the training images' shape."""
        set_name, _, split = name.partition(":")
        ds = open_dataset(set_name, split or None, **self.options)
        check_same_shape(ds, name, self.shape, self.dataset)
        return _in_order(ds, images, self.loading)


def _in_order(ds: Dataset, images: int, loading: dict) -> DataLoader:
    """The first ``images`` images of ``ds`` (0: all), in order."""
    if images:
        ds = Subset(ds, range(min(images, len(ds))))
    return DataLoader(ds, shuffle=False, **loading)


def open_training_data(cfg, ctx: StepContext, *, image_shape: Callable[[Dataset], tuple] = first_image_shape,
                       drop_last: bool = False, test_images: int = 0) -> TrainingData:
    """A trainer's data, from its config (``dataset``, ``image_size``, the :class:`OutlierOptions`, the batch sizes,
    ``seed``, ``data_root``, ``download``, ``num_workers``): the training and test splits of ``cfg.dataset``; the
    shape every image must have, ``image_shape(train_set)`` (which may raise one clear error), that the outliers
    are checked to have; the training stream of in-distribution batches zipped with outlier batches for this rank
    (``drop_last``: without the last partial batch); the test loader over the first ``test_images`` (0: all)."""
    options = dict(root=cfg.data_root, download=cfg.download, size=cfg.image_size)
    train_set = open_dataset(cfg.dataset, "train", **options)
    test_set = open_dataset(cfg.dataset, "test", **options)
    shape = image_shape(train_set)
    out_set = None
    if cfg.uses_outliers:
        out_set = open_dataset(cfg.outliers, None, **options)
        check_same_shape(out_set, cfg.outliers, shape, cfg.dataset)
    stream = InOutBatches(train_set, cfg.batch_size, seed=cfg.seed, rank=ctx.dist.rank,
                          world_size=ctx.dist.world_size, device=ctx.device, num_workers=cfg.num_workers,
                          drop_last=drop_last, outliers=out_set, oe_batch_size=cfg.oe_batch_size,
                          outlier_sampling=cfg.outlier_sampling)
    loading = dict(batch_size=cfg.test_batch_size, **loader_options(cfg.num_workers, ctx.device))
    return TrainingData(cfg.dataset, train_set, test_set, shape, stream, _in_order(test_set, test_images, loading),
                        options, loading)
