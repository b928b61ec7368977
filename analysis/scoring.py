"""Per-image scores of one (model, detector, dataset), through the score cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from oe_core.errors import OEError
from oe_core.progress import progress_bar
from oe_core.run import resolve_device

from .cache import DamagedEntry, ScoreCache, ScoreEntry, ScoreKey
from .datasets import DatasetSpec, iter_batches, open_dataset
from .detectors import Detector, get_detector
from .models import DensityModel, ScoringModel, load_model
from .results import Evaluation


def score_batches(model: ScoringModel, detector: Detector, dataset, batch_size: int,
                  background: Optional[DensityModel] = None, desc: str = "") -> np.ndarray:
    """Scores (float64 [N]) of every image of ``dataset`` in order; a progress bar titled ``desc`` if given."""
    parts = []
    batches = progress_bar(iter_batches(dataset, batch_size), desc, bool(desc), -(-len(dataset) // batch_size))
    with torch.no_grad():
        for x in batches:
            parts.append(detector.score(model, x, background).numpy())
    return np.concatenate(parts)


def weights_digest(model: ScoringModel, detector: Detector, background: Optional[DensityModel]) -> str:
    """The digest a cache entry depends on: the model's, plus the background model's when used."""
    return f"{model.digest}+{background.digest}" if detector.needs_background else model.digest


def cached_scores(cache: ScoreCache, model: ScoringModel, detector: Detector, spec: DatasetSpec, *,
                  data_root: str = "", limit: int = 0, batch_size: int = 200,
                  background: Optional[DensityModel] = None, progress: bool = False) -> tuple[np.ndarray, str]:
    """Scores of ``spec`` under ``model``/``detector``, from the cache when fresh, else computed and stored
    (with a progress bar when ``progress``).

    The data is opened only when the scores must be computed (a missing data set with fresh cached scores
    still evaluates).  Returns ``(scores, status)`` as :meth:`ScoreCache.get_or_compute`.
    """
    key = ScoreKey(model.label, detector.name, spec, limit)
    scored = model.for_dataset(spec.fed_raw)

    def compute() -> np.ndarray:
        desc = f"{model.label} / {detector.name} / {spec.text}" if progress else ""
        return score_batches(scored, detector, open_dataset(spec, data_root, limit), batch_size, background, desc)

    source = {"checkpoint": model.path, "data_root": str(Path(data_root).expanduser().resolve()) if data_root else "",
              "background_checkpoint": background.path if background is not None and detector.needs_background
              else ""}
    return cache.get_or_compute(key, weights_digest(model, detector, background), compute,
                                kind=model.kind, units=detector.units, **source)


def model_source(cache: ScoreCache, label: str, digest: Optional[str] = None) -> dict:
    """Where the scores of model ``label`` came from (checkpoint, data root, background checkpoint), read off its
    intact cache entries -- the one with weights ``digest`` when given; ``{}`` when none records it."""
    for meta in cache.entries(label):
        if meta.get("checkpoint") and (digest is None or meta.get("digest") == digest):
            return {k: meta.get(k, "") for k in ("checkpoint", "data_root", "background_checkpoint")}
    return {}


def read_or_recompute(cache: ScoreCache, key: ScoreKey, digest: Optional[str] = None,
                      batch_size: int = 200) -> ScoreEntry:
    """The entry of ``key``; a damaged one is set aside and recomputed from the checkpoint its sibling entries
    name (which must still hold weights ``digest``, when given).  :class:`OEError` when that is impossible."""
    try:
        return cache.read(key)
    except DamagedEntry as e:
        damage = e
    cache.set_aside(key, damage.reason)
    source = model_source(cache, key.model, digest)
    if not source:
        raise OEError(f"{damage}; it was set aside, but no intact entry of model {key.model!r} names its "
                      f"checkpoint: rerun analysis.evaluate with --ckpt {key.model}=CHECKPOINT") from None
    device = resolve_device("auto")
    model = load_model(source["checkpoint"], key.model, device)
    detector = get_detector(key.detector)
    background = None
    if detector.needs_background:
        background = load_model(source["background_checkpoint"], "background", device)
    now = weights_digest(model, detector, background)
    if digest is not None and now != digest:
        raise OEError(f"{damage}; it was set aside, but {source['checkpoint']!r} holds other weights now "
                      f"({now[:12]} vs {digest[:12]}): rerun analysis.evaluate with --ckpt")
    cached_scores(cache, model, detector, key.dataset, data_root=source["data_root"], limit=key.limit,
                  batch_size=batch_size, background=background)
    return cache.read(key)


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
        entry = read_or_recompute(cache, key, expect)
        moved = expect is not None and entry.meta.get("digest") != expect
        if moved or entry.meta.get("fingerprint") != key.fingerprint:
            raise OEError(f"cached scores {str(cache.path(key))!r} no longer match {str(results_path)!r} "
                          "(recomputed since); rerun analysis.evaluate --from-results to refresh the results")
        return entry.scores

    id_scores = read(DatasetSpec.from_dict(ev.settings["id_dataset"]), digest)
    ood = {r.display: read(DatasetSpec.from_dict(r.ood), r.digest) for r in rows}
    return GroupScores(model, detector, id_scores, ood, {r.display: r.ood["name"] for r in rows})
