"""The score cache: reuse, staleness (digest, dataset fingerprint, format, corruption) and recomputation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from analysis.score_cache import FORMAT, DamagedEntry, ScoreCache, ScoreKey
from analysis.datasets import DatasetSpec
from analysis.load_model import ClassifierModel
from analysis.cached_scores import BoundDetector, cached_scores
from oe_core.detectors import get_detector
from oe_core.errors import OEError


class Counter:
    def __init__(self, values):
        self.values, self.calls = np.asarray(values, dtype=float), 0

    def __call__(self):
        self.calls += 1
        return self.values


def _key(limit: int = 0, dataset: str = "gaussian,size=8,n=10") -> ScoreKey:
    return ScoreKey("clf", "msp", DatasetSpec.parse(dataset), limit)


def test_save_and_read_round_trip(tmp_path):
    cache = ScoreCache(tmp_path)
    path = cache.save(_key(), [0.5, -1.0, 2.0], "abc", kind="classifier")
    assert path == tmp_path / "clf" / "msp" / "gaussian-test_n=10_size=8.npz"
    entry = cache.read(_key())
    np.testing.assert_array_equal(entry.scores, [0.5, -1.0, 2.0])
    assert entry.scores.dtype == np.float64
    m = entry.meta
    assert (m["format"], m["digest"], m["n"], m["kind"], m["model"], m["detector"]) == (FORMAT, "abc", 3,
                                                                                     "classifier", "clf", "msp")
    assert m["dataset"]["options"] == {"n": 10, "size": 8} and "torch" in m["versions"] and m["created"]
    assert cache.models() == ["clf"] and [e["n"] for e in cache.entries("clf")] == [3]


def test_reused_until_digest_or_fingerprint_changes(tmp_path):
    cache = ScoreCache(tmp_path)
    first, second = Counter([1.0, 2.0]), Counter([3.0, 4.0, 5.0])
    scores, status = cache.get_or_compute(_key(), "d1", first)
    assert status == "new" and first.calls == 1
    scores, status = cache.get_or_compute(_key(), "d1", second)
    assert status == "hit" and second.calls == 0 and scores.tolist() == [1.0, 2.0]
    with pytest.warns(UserWarning, match="digest changed"):
        scores, status = cache.get_or_compute(_key(), "d2", second)
    assert status.startswith("stale: checkpoint digest changed") and second.calls == 1
    assert scores.tolist() == [3.0, 4.0, 5.0] and cache.read(_key()).meta["digest"] == "d2"
    third = Counter([9.0])
    with pytest.warns(UserWarning, match="fingerprint changed"):
        _, status = cache.get_or_compute(_key(limit=1), "d2", third)
    assert status.startswith("stale: dataset fingerprint") and third.calls == 1
    assert cache.get_or_compute(_key(limit=1), "d2", third)[1] == "hit" and third.calls == 1


def test_corrupt_or_foreign_entries_are_stale(tmp_path):
    cache = ScoreCache(tmp_path)
    cache.save(_key(), [1.0], "d1")
    cache.path(_key()).write_bytes(b"not an npz")
    with pytest.raises(DamagedEntry, match="unreadable: not an .npz"):
        cache.read(_key())
    fresh = Counter([7.0, 8.0])
    with pytest.warns(UserWarning, match="damaged score-cache entry .* set aside as"):
        scores, status = cache.get_or_compute(_key(), "d1", fresh)
    assert fresh.calls == 1 and status.startswith("damaged") and scores.tolist() == [7.0, 8.0]
    assert cache.path(_key()).with_suffix(".npz.damaged").read_bytes() == b"not an npz"
    # an entry written by another format version
    path = cache.path(_key())
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
    meta["format"] = FORMAT + 1
    np.savez(path, scores=np.array([7.0, 8.0]), meta=np.array(json.dumps(meta)))
    assert "format" in cache.stale_reason(_key(), "d1")


def test_bad_labels_and_scores_rejected(tmp_path):
    cache = ScoreCache(tmp_path)
    with pytest.raises(OEError, match="cannot name a cache folder"):
        cache.save(ScoreKey("../up", "msp", DatasetSpec.parse("gaussian")), [1.0], "d")
    with pytest.raises(OEError, match="not finite"):
        cache.save(_key(), [1.0, float("nan")], "d")
    with pytest.raises(OEError, match="no cached scores"):
        cache.read(_key(dataset="blobs"))


class Spy(nn.Module):
    """A classifier that counts the images it sees."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 3)
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.fc(x.flatten(1))


def test_cached_scores_skip_the_model_and_the_data_when_fresh(tmp_path):
    cache = ScoreCache(tmp_path)
    net = Spy().eval()
    model = ClassifierModel(net, label="clf", digest="w1")
    spec = DatasetSpec.parse("gaussian,size=8,n=10")
    msp = BoundDetector(get_detector("msp"), model)
    s1, st1 = cached_scores(cache, model, msp, spec, batch_size=4)
    assert st1 == "new" and net.seen == 10 and s1.shape == (10,)
    s2, st2 = cached_scores(cache, model, msp, spec, batch_size=4)
    assert st2 == "hit" and net.seen == 10 and np.array_equal(s1, s2)
    # a set whose data is absent still evaluates from fresh cached scores
    textures = DatasetSpec.parse("textures")
    cache.save(ScoreKey("clf", "msp", textures), [0.1, 0.2], "w1")
    s3, st3 = cached_scores(cache, model, msp, textures)
    assert st3 == "hit" and s3.tolist() == [0.1, 0.2] and net.seen == 10
    # new weights: recomputed
    with torch.no_grad():
        net.fc.weight.add_(1.0)
    with pytest.warns(UserWarning, match="digest changed"):
        new = ClassifierModel(net, label="clf", digest="w2")
        s4, st4 = cached_scores(cache, new, BoundDetector(get_detector("msp"), new), spec)
    assert st4.startswith("stale") and net.seen == 20 and not np.array_equal(s1, s4)
