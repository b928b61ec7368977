"""Per-image scores of one (model, detector, dataset), through the score cache.

Detectors come from the one registry (:mod:`oe_core.detectors`; the method packages register theirs);
:class:`BoundDetector` builds the detector object for one model, fits it on the in-distribution training set
when the detector needs that (once, on first use), and feeds it the model's inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from oe_core.detectors import DetectorEntry, get_detector
from oe_core.errors import OEError
from oe_core.progress import progress_bar
from oe_core.run import resolve_device

from .score_cache import DamagedEntry, ScoreCache, ScoreEntry, ScoreKey
from .datasets import DatasetSpec, image_files, iter_batches
from .load_model import DensityModel, ScoringModel, load_model
from .results import Evaluation


class _FitBatches:
    """``(model inputs, labels)`` batches of a dataset, the loader detectors are fitted with."""

    def __init__(self, model: ScoringModel, dataset, batch_size: int):
        self.model, self.dataset, self.batch_size = model, dataset, batch_size

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)
        for x, y in loader:
            yield self.model.inputs(x), y.to(self.model.device)


class BoundDetector:
    """A registered detector bound to one model (and background model): built, and fitted on ``fit_spec`` (the
    in-distribution training set) when the detector needs fitting, on first use."""

    def __init__(self, entry: DetectorEntry, model: ScoringModel, background: Optional[DensityModel] = None,
                 fit_spec: Optional[DatasetSpec] = None, data_root: str = "", limit: int = 0,
                 batch_size: int = 200):
        if model.kind != entry.kind:
            raise OEError(f"detector {entry.name!r} scores {entry.kind} models, but {model.label!r} is a "
                          f"{model.kind}")
        self.entry, self.model, self.background = entry, model, background
        self.fit_spec = fit_spec if entry.needs_fit else None
        self.data_root, self.limit, self.batch_size = data_root, limit, batch_size
        self._obj: Any = None

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def units(self) -> str:
        return self.entry.units

    @property
    def digest(self) -> str:
        """What a cache entry depends on: the model's weights, the background's, the data it was fitted on."""
        d = self.model.digest
        if self.entry.needs_background:
            d += f"+{self.background.digest if self.background is not None else ''}"
        if self.fit_spec is not None:
            d += f"+fit:{self.fit_spec.fingerprint(self.limit)}"
        return d

    def detector(self) -> Any:
        """The detector object, built (and fitted) on the first call."""
        if self._obj is None:
            if self.entry.needs_fit and self.fit_spec is None:
                raise OEError(f"detector {self.name!r} must be fitted on the in-distribution training set; "
                              "give the evaluation an in-distribution set with a train split")
            background = self.background.module if self.background is not None else None
            obj = self.entry.build(self.model.module, background=background)
            if hasattr(obj, "to") and not isinstance(obj, torch.nn.Module):
                obj.to(self.model.device)  # pytorch-ood detectors keep their own device
            if self.fit_spec is not None:
                fit_model = self.model.for_dataset(self.fit_spec.fed_raw)
                data = self.fit_spec.open(self.data_root, self.limit)
                print(f"  {self.model.label} / {self.name}: fitting on {self.fit_spec.text} ({len(data)} images)",
                      flush=True)
                obj.fit(_FitBatches(fit_model, data, self.batch_size))
            self._obj = obj
        return self._obj

    def scores(self, model: ScoringModel, x: torch.Tensor) -> torch.Tensor:
        """Scores [B] (float64, CPU) of the uint8 batch ``x``; ``model``: the bound model as fed this set."""
        det = self.detector()
        with torch.enable_grad() if self.entry.needs_grad else torch.no_grad():  # ODIN steps along the gradient
            out = det.predict(model.inputs(x))
        if tuple(out.shape) != (x.shape[0],):
            raise OEError(f"detector {self.name!r} returned shape {tuple(out.shape)} for a batch of {x.shape[0]}")
        return out.detach().to("cpu", torch.float64)


def score_batches(model: ScoringModel, detector: BoundDetector, dataset, batch_size: int, desc: str = "") -> np.ndarray:
    """Scores (float64 [N]) of every image of ``dataset`` in order; a progress bar titled ``desc`` if given."""
    batches = progress_bar(iter_batches(dataset, batch_size), desc, bool(desc), -(-len(dataset) // batch_size))
    return np.concatenate([detector.scores(model, x).numpy() for x in batches])


def cached_scores(cache: ScoreCache, model: ScoringModel, detector: BoundDetector, spec: DatasetSpec, *,
                  data_root: str = "", limit: int = 0, batch_size: int = 200,
                  progress: bool = False) -> tuple[np.ndarray, str]:
    """Scores of ``spec`` under ``model``/``detector``, from the cache when fresh, else computed and stored
    (with a progress bar when ``progress``).

    The data is opened (and a detector that needs it fitted) only when the scores must be computed (a missing
    data set with fresh cached scores still evaluates).  Returns ``(scores, status)`` as
    :meth:`ScoreCache.get_or_compute`.
    """
    key = ScoreKey(model.label, detector.name, spec, limit)
    scored = model.for_dataset(spec.fed_raw)

    def compute() -> np.ndarray:
        desc = f"{model.label} / {detector.name} / {spec.text}" if progress else ""
        dataset = spec.open(data_root, limit)
        files = image_files(dataset)
        if files is not None:  # find every unreadable image in this one pass, then name them all
            files.collect_errors = True
        scores = score_batches(scored, detector, dataset, batch_size, desc)
        if files is not None:
            files.check_bad()
        return scores

    background = detector.background if detector.entry.needs_background else None
    source = {"checkpoint": model.path, "data_root": str(Path(data_root).expanduser().resolve()) if data_root else "",
              "background_checkpoint": background.path if background is not None else "",
              "fit_dataset": detector.fit_spec.to_dict() if detector.fit_spec is not None else None}
    return cache.get_or_compute(key, detector.digest, compute, kind=model.kind, units=detector.units, **source)


def model_source(cache: ScoreCache, label: str, digest: Optional[str] = None) -> dict:
    """Where the scores of model ``label`` came from (checkpoint, data root, background checkpoint), read off its
    intact cache entries -- the one with weights ``digest`` when given; ``{}`` when none records it."""
    for meta in cache.entries(label):
        if meta.get("checkpoint") and (digest is None or meta.get("digest") == digest):
            return {k: meta.get(k, "") for k in ("checkpoint", "data_root", "background_checkpoint")}
    return {}


def _fit_dataset(cache: ScoreCache, label: str, detector: str) -> Optional[DatasetSpec]:
    """The set a fitted detector of model ``label`` was fitted on, read off its intact cache entries."""
    for meta in cache.entries(label):
        if meta.get("detector") == detector and meta.get("fit_dataset"):
            return DatasetSpec.from_dict(meta["fit_dataset"])
    return None


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
    entry = get_detector(key.detector)
    background = None
    if entry.needs_background:
        background = load_model(source["background_checkpoint"], "background", device)
    fit_spec = _fit_dataset(cache, key.model, key.detector) if entry.needs_fit else None
    if entry.needs_fit and fit_spec is None:
        raise OEError(f"{damage}; it was set aside, but no intact entry says what {key.detector!r} was fitted on: "
                      "rerun analysis.evaluate with --ckpt")
    detector = BoundDetector(entry, model, background, fit_spec, source["data_root"], key.limit, batch_size)
    if digest is not None and detector.digest != digest:
        raise OEError(f"{damage}; it was set aside, but {source['checkpoint']!r} holds other weights now "
                      f"({detector.digest[:12]} vs {digest[:12]}): rerun analysis.evaluate with --ckpt")
    cached_scores(cache, model, detector, key.dataset, data_root=source["data_root"], limit=key.limit,
                  batch_size=batch_size)
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
