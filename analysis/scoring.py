"""Per-image scores of one (model, detector, dataset), through the score cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from oe_core.errors import OEError

from .cache import ScoreCache, ScoreKey
from .datasets import DatasetSpec, iter_batches, open_dataset
from .detectors import Detector
from .models import DensityModel, ScoringModel
from .results import Evaluation


def score_batches(model: ScoringModel, detector: Detector, dataset, batch_size: int,
                  background: Optional[DensityModel] = None) -> np.ndarray:
    """Scores (float64 [N]) of every image of ``dataset`` in order."""
    parts = []
    with torch.no_grad():
        for x in iter_batches(dataset, batch_size):
            parts.append(detector.score(model, x, background).numpy())
    return np.concatenate(parts)


def weights_digest(model: ScoringModel, detector: Detector, background: Optional[DensityModel]) -> str:
    """The digest a cache entry depends on: the model's, plus the background model's when used."""
    return f"{model.digest}+{background.digest}" if detector.needs_background else model.digest


def cached_scores(cache: ScoreCache, model: ScoringModel, detector: Detector, spec: DatasetSpec, *,
                  data_root: str = "", limit: int = 0, batch_size: int = 200,
                  background: Optional[DensityModel] = None) -> tuple[np.ndarray, str]:
    """Scores of ``spec`` under ``model``/``detector``, from the cache when fresh, else computed and stored.

    The data is opened only when the scores must be computed (a missing data set with fresh cached scores
    still evaluates).  Returns ``(scores, status)`` as :meth:`ScoreCache.get_or_compute`.
    """
    key = ScoreKey(model.label, detector.name, spec, limit)
    scored = model.for_dataset(spec.fed_raw)

    def compute() -> np.ndarray:
        return score_batches(scored, detector, open_dataset(spec, data_root, limit), batch_size, background)

    return cache.get_or_compute(key, weights_digest(model, detector, background), compute,
                                kind=model.kind, units=detector.units)


@dataclass
class GroupScores:
    """The stored scores behind one (model, detector) of an evaluation: ID and every evaluated OOD set."""

    model: str
    detector: str
    id_scores: np.ndarray
    ood: dict[str, np.ndarray]  # display name -> scores, in evaluation order (evaluated sets only)
    ood_names: dict[str, str]   # display name -> dataset name


def stored_scores(ev: Evaluation, results_path: str | Path, model: str, detector: str,
                  cache_dir: Optional[str | Path] = None) -> GroupScores:
    """Read the cached scores of a results file's (model, detector) group.

    Raises :class:`OEError` when an entry is missing or no longer matches the results (its weights digest
    or dataset fingerprint changed since): rerun ``analysis.evaluate`` (or ``--from-results``) first.
    """
    cache = ScoreCache(cache_dir or ev.cache_dir(results_path))
    limit = ev.settings["limit"]
    rows = [r for r in ev.group(model, detector) if r.ok]
    digest = rows[0].digest if rows else None

    def read(spec: DatasetSpec, expect: Optional[str]) -> np.ndarray:
        key = ScoreKey(model, detector, spec, limit)
        entry = cache.read(key)
        moved = expect is not None and entry.meta.get("digest") != expect
        if moved or entry.meta.get("fingerprint") != key.fingerprint:
            raise OEError(f"cached scores {str(cache.path(key))!r} no longer match {str(results_path)!r} "
                          "(recomputed since); rerun analysis.evaluate --from-results to refresh the results")
        return entry.scores

    id_scores = read(DatasetSpec.from_dict(ev.settings["id_dataset"]), digest)
    ood = {r.display: read(DatasetSpec.from_dict(r.ood), r.digest) for r in rows}
    return GroupScores(model, detector, id_scores, ood, {r.display: r.ood["name"] for r in rows})
