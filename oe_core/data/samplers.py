"""Exactly resumable batch samplers for in-distribution and outlier data (single or multi-process).

Both yield lists of dataset indices (a DataLoader's ``batch_sampler``), in an order that is a pure function of
``(seed, epoch, step)``: the randomness comes from a ``torch.Generator`` seeded from ``(seed, stream, epoch)``
(``stream`` keeps the two samplers independent); ``set_epoch(e)`` selects the epoch and ``set_start(k)`` then skips
its first ``k`` batches without touching any data.  ``batch_size`` is the *global* batch: with ``world_size > 1``,
rank ``r`` yields its contiguous chunk ``[r*b/w, (r+1)*b/w)`` of every global batch (a shorter last batch of ``m``
images: the first ``m % w`` ranks get one more), so the ranks together see the batches of a one-process run.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from ..cli_config import require

_STREAM_IN = 0
_STREAM_OUT = 1
OUTLIER_MODES = ("block", "shuffle")


def epoch_generator(seed: int, stream: int, epoch: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, stream, epoch)`` (well mixed, reproducible)."""
    state = np.random.SeedSequence([seed, stream, epoch]).generate_state(2, dtype=np.uint32)
    g = torch.Generator()
    g.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return g


def rank_chunk(batch: torch.Tensor, rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s contiguous share of a global batch (as even as possible, earlier ranks larger)."""
    base, extra = divmod(len(batch), world_size)
    start = rank * base + min(rank, extra)
    return batch[start:start + base + (1 if rank < extra else 0)].tolist()


class _ResumableBatchSampler(Sampler):
    """Shared epoch / start-step / rank bookkeeping; subclasses define the global batch order."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int):
        super().__init__()
        require(n >= 1, f"{type(self).__name__}: the dataset is empty (n={n})")
        require(batch_size >= 1, f"{type(self).__name__}: batch_size must be >= 1, got {batch_size}")
        require(seed >= 0, f"{type(self).__name__}: seed must be >= 0, got {seed}")
        require(world_size >= 1 and 0 <= rank < world_size,
                f"{type(self).__name__}: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        require(batch_size % world_size == 0,
                f"{type(self).__name__}: global batch_size {batch_size} is not divisible by world_size {world_size}")
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches to yield; resets the start step to 0."""
        require(epoch >= 0, f"{type(self).__name__}: epoch must be >= 0, got {epoch}")
        self.epoch = epoch
        self.start = 0

    def set_start(self, step: int) -> None:
        """Skip the first ``step`` batches of the current epoch (call after ``set_epoch``)."""
        require(0 <= step <= len(self), f"{type(self).__name__}: start step {step} is outside 0..{len(self)}")
        self.start = step

    def global_batches(self) -> Iterator[torch.Tensor]:
        """The current epoch's global batches from the start step on."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield rank_chunk(batch, self.rank, self.world_size)


class InBatchSampler(_ResumableBatchSampler):
    """Batches over ``n`` in-distribution examples: a fresh permutation per epoch (``shuffle``) or the identity
    order; ``__len__`` is the number of steps per epoch."""

    def __init__(self, n: int, batch_size: int, *, seed: int, shuffle: bool = True, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        super().__init__(n, batch_size, seed, rank, world_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        tail = n % batch_size
        require(not drop_last or n >= batch_size,
                f"InBatchSampler: drop_last with {n} examples < batch_size {batch_size} leaves no batch")
        require(drop_last or tail == 0 or tail >= world_size,
                f"InBatchSampler: the last batch holds {tail} examples, fewer than world_size {world_size}, "
                f"so some rank would get none; use drop_last=True or another batch size")

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def global_batches(self) -> Iterator[torch.Tensor]:
        order = (torch.randperm(self.n, generator=epoch_generator(self.seed, _STREAM_IN, self.epoch))
                 if self.shuffle else torch.arange(self.n))
        b = self.batch_size
        for step in range(self.start, len(self)):
            yield order[step * b:(step + 1) * b]


class OutlierBatchSampler(_ResumableBatchSampler):
    """``steps_per_epoch`` full batches of outliers per epoch.  ``mode="block"`` (the reference): one contiguous
    block, in order, from an offset drawn uniformly from ``0..n-1`` per (seed, epoch), wrapping modulo ``n``.
    ``mode="shuffle"``: a fresh permutation per epoch, and one more from the same generator per further pass."""

    def __init__(self, n: int, batch_size: int, steps_per_epoch: int, *, mode: str = "block", seed: int,
                 rank: int = 0, world_size: int = 1):
        super().__init__(n, batch_size, seed, rank, world_size)
        require(steps_per_epoch >= 1, f"OutlierBatchSampler: steps_per_epoch must be >= 1, got {steps_per_epoch}")
        require(mode in OUTLIER_MODES, f"OutlierBatchSampler: mode {mode!r} is not one of {list(OUTLIER_MODES)}")
        self.steps_per_epoch, self.mode = steps_per_epoch, mode

    def __len__(self) -> int:
        return self.steps_per_epoch

    def global_batches(self) -> Iterator[torch.Tensor]:
        g = epoch_generator(self.seed, _STREAM_OUT, self.epoch)
        b, n = self.batch_size, self.n
        if self.mode == "block":
            offset = int(torch.randint(n, (1,), generator=g))
            for step in range(self.start, self.steps_per_epoch):
                yield (offset + step * b + torch.arange(b)) % n
            return
        perms: dict[int, torch.Tensor] = {}  # pass -> permutation, drawn in pass order
        drawn = 0
        for step in range(self.start, self.steps_per_epoch):
            pos = step * b + torch.arange(b)
            first, last = int(pos[0]) // n, int(pos[-1]) // n
            while drawn <= last:
                perm = torch.randperm(n, generator=g)
                if drawn >= first:
                    perms[drawn] = perm
                drawn += 1
            for k in [k for k in perms if k < first]:
                del perms[k]
            yield torch.cat([perms[k][pos[pos // n == k] % n] for k in range(first, last + 1)])
