"""The training stream both trainers share: in-distribution batches, zipped with OE outlier batches.

Built on the resumable samplers (:mod:`oe_core.data.samplers`): ``epoch(e, start_step)`` yields exactly the
batches of epoch ``e`` from ``start_step`` on, for this rank, as ``((x_in, y_in), outlier_batch_or_None)``.
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from .samplers import InBatchSampler, OutlierBatchSampler


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
        self.in_sampler.set_epoch(epoch)  # set_epoch resets the start, so set_start comes after it
        self.in_sampler.set_start(start_step)
        if self.out_loader is None:
            return ((batch, None) for batch in self.in_loader)
        self.out_sampler.set_epoch(epoch)
        self.out_sampler.set_start(start_step)
        return zip(self.in_loader, self.out_loader)
