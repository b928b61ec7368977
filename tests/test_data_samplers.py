"""Resumable batch samplers: determinism, epochs, set_start, rank chunks, block/shuffle outlier modes."""
from __future__ import annotations

import pytest
import torch

from oe_core.data import InBatchSampler, OutlierBatchSampler
from oe_core.errors import ConfigError


def epoch(sampler, e, start=0):
    sampler.set_epoch(e)
    sampler.set_start(start)
    return list(sampler)


@pytest.mark.parametrize("n, b, drop_last, sizes", [(10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]),
                                                    (8, 4, False, [4, 4])])
def test_in_sampler_covers_a_permutation(n, b, drop_last, sizes):
    s = InBatchSampler(n, b, seed=0, drop_last=drop_last)
    batches = epoch(s, 0)
    assert [len(x) for x in batches] == sizes and len(s) == len(sizes)
    flat = [i for x in batches for i in x]
    assert len(set(flat)) == len(flat) and set(flat) <= set(range(n))
    if not drop_last:
        assert sorted(flat) == list(range(n))


def test_in_sampler_determinism_epochs_and_seeds():
    a, b = InBatchSampler(50, 8, seed=1), InBatchSampler(50, 8, seed=1)
    assert epoch(a, 3) == epoch(b, 3)
    assert epoch(a, 3) != epoch(a, 4)
    assert epoch(a, 3) != epoch(InBatchSampler(50, 8, seed=2), 3)
    assert [i for x in epoch(InBatchSampler(10, 3, seed=0, shuffle=False), 5) for i in x] == list(range(10))


def test_in_sampler_set_start_equals_slicing_and_set_epoch_resets_it():
    s = InBatchSampler(37, 5, seed=4)
    full = epoch(s, 2)
    for k in range(len(s) + 1):
        assert epoch(s, 2, start=k) == full[k:]
    s.set_start(3)
    s.set_epoch(2)
    assert list(s) == full


@pytest.mark.parametrize("n, b, w", [(50, 8, 2), (54, 8, 4), (47, 6, 3), (11, 4, 2), (48, 6, 3)])
def test_in_sampler_rank_chunks_concatenate_to_the_one_process_batches(n, b, w):
    one = epoch(InBatchSampler(n, b, seed=7), 1)
    ranks = [epoch(InBatchSampler(n, b, seed=7, rank=r, world_size=w), 1) for r in range(w)]
    assert all(len(r) == len(one) for r in ranks)
    for step, batch in enumerate(one):
        chunks = [r[step] for r in ranks]
        assert sum(chunks, []) == batch
        assert max(map(len, chunks)) - min(map(len, chunks)) <= 1 and all(chunks)
    for r in range(w):  # resuming a rank mid-epoch gives that rank's remaining chunks
        assert epoch(InBatchSampler(n, b, seed=7, rank=r, world_size=w), 1, start=2) == ranks[r][2:]


def test_in_sampler_drives_a_dataloader():
    data = torch.arange(20) * 10
    loader = torch.utils.data.DataLoader(data, batch_sampler=InBatchSampler(20, 6, seed=0))
    got = torch.cat(list(loader))
    assert sorted(got.tolist()) == data.tolist()


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=10, batch_size=6, seed=0, world_size=4), "not divisible"),
    (dict(n=9, batch_size=4, seed=0, world_size=2), "fewer than world_size"),
    (dict(n=3, batch_size=4, seed=0, drop_last=True), "leaves no batch"),
    (dict(n=0, batch_size=4, seed=0), "empty"),
    (dict(n=8, batch_size=4, seed=0, rank=2, world_size=2), "rank"),
])
def test_in_sampler_rejects_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        InBatchSampler(**kwargs)


def test_set_start_out_of_range():
    with pytest.raises(ConfigError, match="outside 0..3"):
        InBatchSampler(10, 4, seed=0).set_start(4)


def test_block_mode_reads_one_contiguous_wrapping_block():
    n, b, steps = 10, 4, 5  # 20 positions: wraps around twice
    s = OutlierBatchSampler(n, b, steps, seed=0)
    offsets = set()
    for e in range(60):
        batches = epoch(s, e)
        assert len(batches) == steps == len(s) and all(len(x) == b for x in batches)
        flat = [i for x in batches for i in x]
        assert flat == [(flat[0] + k) % n for k in range(b * steps)]
        offsets.add(flat[0])
    assert offsets == set(range(n))  # the per-epoch offset is drawn over the whole set


def test_block_mode_epochs_seeds_and_resume():
    s = OutlierBatchSampler(1000, 16, 7, seed=3)
    assert epoch(s, 0) == epoch(OutlierBatchSampler(1000, 16, 7, seed=3), 0)
    assert epoch(s, 0) != epoch(s, 1)
    assert epoch(s, 0) != epoch(OutlierBatchSampler(1000, 16, 7, seed=4), 0)
    full = epoch(s, 5)
    for k in range(8):
        assert epoch(s, 5, start=k) == full[k:]


def test_shuffle_mode_is_a_fresh_permutation_per_pass():
    n, b, steps = 12, 8, 6  # 48 positions = 4 passes; batches straddle pass boundaries
    s = OutlierBatchSampler(n, b, steps, mode="shuffle", seed=0)
    flat = [i for x in epoch(s, 0) for i in x]
    passes = [flat[k * n:(k + 1) * n] for k in range(4)]
    assert all(sorted(p) == list(range(n)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    assert flat != [i for x in epoch(s, 1) for i in x]
    full = epoch(s, 2)
    for k in range(steps + 1):
        assert epoch(s, 2, start=k) == full[k:]


@pytest.mark.parametrize("mode", ["block", "shuffle"])
def test_outlier_rank_chunks_concatenate(mode):
    one = epoch(OutlierBatchSampler(100, 12, 9, mode=mode, seed=5), 2)
    ranks = [epoch(OutlierBatchSampler(100, 12, 9, mode=mode, seed=5, rank=r, world_size=3), 2) for r in range(3)]
    for step, batch in enumerate(one):
        assert [len(r[step]) for r in ranks] == [4, 4, 4]
        assert sum((r[step] for r in ranks), []) == batch


def test_outlier_stream_differs_from_in_distribution_stream():
    ins = [i for x in epoch(InBatchSampler(64, 64, seed=0), 0) for i in x]
    outs = [i for x in epoch(OutlierBatchSampler(64, 64, 1, mode="shuffle", seed=0), 0) for i in x]
    assert ins != outs


@pytest.mark.parametrize("kwargs, match", [(dict(mode="random"), "not one of"), (dict(steps_per_epoch=0), ">= 1"),
                                           (dict(world_size=5), "not divisible")])
def test_outlier_sampler_rejects_bad_settings(kwargs, match):
    args = dict(n=10, batch_size=4, steps_per_epoch=3, seed=0) | kwargs
    with pytest.raises(ConfigError, match=match):
        OutlierBatchSampler(**args)
