"""``python -m analysis.evaluate``: score models on an OOD suite with the reference protocol and write tables.

Models come from checkpoints (``--ckpt LABEL=PATH``; classifier or density model, recognised from the
checkpoint) and/or straight from the score cache (``--cached LABEL``, no model needed).  For every model and
detector: the in-distribution test set is scored once, every OOD set is scored (scores cached per checkpoint
digest, dataset and detector), and the reference protocol (``len(ID) // ratio`` OOD scores per trial,
``--num-to-avg`` seeded trials) gives FPR95 / AUROC / AUPR with mean and std.  A set whose data is missing is
skipped with a note in the tables (``--strict``: the run fails instead).  Writes ``results.json`` (everything,
per-trial values included), ``results.csv``, ``results.md`` and ``results.tex`` to ``--out``.

``--from-results OUT/results.json`` re-renders those tables from the score cache with the settings, models
and sets of an earlier run (no checkpoints or data needed; an unchanged cache gives a byte-identical
``results.json``): what ``scripts/figures.sh`` does.  A damaged cache entry is set aside and recomputed from
the checkpoint it was scored with, in every mode.

Detectors are looked up by name in the one registry (:mod:`oe_core.detectors`), where ``classifiers_oe`` and
``density_oe`` register theirs, and pytorch-ood's when it is installed (``--list-detectors``).  Detectors that
must be fitted (Mahalanobis, ViM, KNN, ReAct) are fitted on the in-distribution set's ``train`` split, with the
same options (and ``--limit``).
"""
from __future__ import annotations

import copy
import dataclasses
import fnmatch
import hashlib
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from classifiers_oe.weights import TRUST_PICKLE_HELP, parse_options
from oe_core.cli_config import help_field, parse_config, require, validate
from oe_core.data import dataset_info
from oe_core.detectors import DETECTORS, Detector, DetectorEntry, detectors_for, get_detector
from oe_core.errors import ConfigError, DataError, OEError, cli_main
from oe_core.metrics import FPR_RULES
from oe_core.outputs import check_writable_folder
from oe_core.run import resolve_device

from .score_cache import ScoreCache, ScoreKey
from .datasets import DatasetSpec, ood_suite
from .load_model import ClassifierModel, DensityModel, ScoringModel, load_model
from .protocol import evaluate_protocol
from .results import Evaluation, SetResult, evaluation_tables, relative_to, write_evaluation
from .cached_scores import BoundDetector, cached_scores, read_or_recompute


@dataclass
class EvaluateConfig:
    """Evaluate OOD detectors of trained models with the reference protocol; write CSV/JSON/Markdown/LaTeX."""

    ckpt: list[str] = help_field([], "models to evaluate: LABEL=PATH[:OPTIONS] (or PATH; the label is then the run "
                                     "folder's name), PATH a checkpoint file or run folder of this suite, or your "
                                     "own classifier file: a plain state dict (architecture inferred from its keys "
                                     "or given as OPTIONS, e.g. :arch=wrn,depth=40,widen=2,classes=10 or "
                                     ":arch=resnet18 for a torchvision model); a whole pickled model loads only with "
                                     "--trust-pickle")
    trust_pickle: bool = help_field(False, TRUST_PICKLE_HELP)
    cached: list[str] = help_field([], "model labels (shell-style patterns allowed) to evaluate from the score "
                                       "cache alone, without checkpoints")
    from_results: str = help_field("", "re-render the tables of an earlier results.json from its score cache "
                                       "(takes its datasets, detectors, models and protocol settings)")
    detectors: list[str] = help_field(["auto"], "detectors to run, each on the models of its kind (auto: the "
                                                "paper's, msp for classifiers and bpd for density models); see "
                                                "--list-detectors")
    list_detectors: bool = help_field(False, "print the detectors with their metadata and exit")
    id_dataset: str = help_field("cifar10", "in-distribution set as NAME[:SPLIT][,KEY=VALUE...] "
                                            "(split default: test)")
    ood: list[str] = help_field(["default"], "OOD sets as NAME[:SPLIT][,KEY=VALUE...] (default: the paper's "
                                             "suite for the ID set)")
    data_root: str = help_field("", "folder holding the datasets (see python -m oe_core.data)")
    out: str = help_field("runs/evaluate", "output folder for results.{json,csv,md,tex}")
    cache_dir: str = help_field("", "score cache folder (default: OUT/score_cache)")
    background: str = help_field("", "density checkpoint of the background model for the likelihood_ratio "
                                     "detector (a density run trained with --perturb-rate, e.g. 0.1-0.2 as Ren et al. 2019)")
    num_to_avg: int = help_field(10, "protocol trials per OOD set (the reference uses 10)")
    ratio: int = help_field(5, "ID:OOD ratio: each trial uses len(ID test) // ratio OOD images")
    seed: int = help_field(0, "seed of the per-trial OOD subsamples")
    rule: str = help_field("closest", "FPR-at-TPR rule: closest (the reference), first_geq (OpenOOD, "
                                      "pytorch-ood), interp (ood-metrics)", choices=FPR_RULES)
    tpr: float = help_field(0.95, "TPR level of the FPR metric")
    limit: int = help_field(0, "score at most this many images per set (0: all); for quick looks")
    strict: bool = help_field(False, "fail when an OOD set's data is missing instead of skipping it")
    device: str = help_field("auto", "cpu, cuda, cuda:N or auto")
    batch_size: int = help_field(200, "images per scoring batch")
    progress: bool = help_field(True, "show a progress bar while scoring each set")

    def validate(self) -> None:
        require(self.num_to_avg >= 1, f"--num-to-avg must be >= 1, got {self.num_to_avg}")
        require(self.ratio >= 1, f"--ratio must be >= 1, got {self.ratio}")
        require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(self.limit >= 0, f"--limit must be >= 0, got {self.limit}")
        require(0 < self.tpr <= 1, f"--tpr must be in (0, 1], got {self.tpr}")
        require(not (self.from_results and (self.ckpt or self.cached)),
                "--from-results takes its models from the results file; drop --ckpt/--cached")


_OPTIONS = re.compile(r"^(?P<path>.+):(?P<opts>[A-Za-z_]+=[^:]*)$")


def _label_and_path(text: str) -> tuple[str, Path, dict[str, str]]:
    """``LABEL=PATH[:OPTIONS]`` (or ``PATH``) -> label, path and model options."""
    options: dict[str, str] = {}
    m = _OPTIONS.match(text)
    if m and not Path(text).exists():
        text, options = m.group("path"), parse_options(m.group("opts"))
    label, eq, path = text.partition("=")
    if not eq:
        p = Path(text)
        return (p.parent.name if p.is_file() or p.suffix == ".pt" else p.name) or "model", p, options
    if not label or not path:
        raise ConfigError(f"--ckpt {text!r}: expected LABEL=PATH")
    return label, Path(path), options


@dataclass
class _CachedModel:
    """A model known only by its cached scores."""

    label: str
    kind: str


def _cached_models(cache: ScoreCache, patterns: list[str], id_spec: DatasetSpec) -> list[_CachedModel]:
    found = []
    for pattern in patterns:
        labels = [m for m in cache.models() if fnmatch.fnmatch(m, pattern)]
        if not labels:
            raise ConfigError(f"--cached {pattern!r}: no model in the score cache {str(cache.root)!r} matches "
                              f"(models there: {', '.join(cache.models()) or 'none'})")
        for label in labels:
            kinds = {e.get("kind") for e in cache.entries(label) if e["dataset"]["name"] == id_spec.name}
            if len(kinds) != 1:
                raise OEError(f"cached model {label!r} has no single kind for {id_spec.text} "
                              f"(found {sorted(map(str, kinds)) or 'no entries'})")
            found.append(_CachedModel(label, kinds.pop()))
    return found


def _cached_detectors(cache: ScoreCache, model: _CachedModel, id_spec: DatasetSpec,
                      names: list[str]) -> list[DetectorEntry]:
    have = {e["detector"] for e in cache.entries(model.label) if e["dataset"]["text"] == id_spec.text}
    if names != ["auto"]:
        return [d for d in detectors_for(model.kind, names) if d.name in have]
    return [get_detector(n) for n in sorted(have) if n in DETECTORS]


class _Evaluator:
    def __init__(self, cfg: EvaluateConfig, id_spec: DatasetSpec, oods: list[DatasetSpec], cache: ScoreCache):
        self.cfg, self.id_spec, self.oods, self.cache = cfg, id_spec, oods, cache

    def bind(self, model, entry: DetectorEntry, background: Optional[DensityModel]):
        """``entry`` bound to ``model`` (fitted detectors: on the ID set's train split); cache-only models: as is."""
        if isinstance(model, _CachedModel):
            return entry
        fit_spec = None
        if entry.needs_fit:
            if "train" not in dataset_info(self.id_spec.name).splits:
                raise ConfigError(f"detector {entry.name!r} is fitted on the in-distribution training set, but "
                                  f"{self.id_spec.name!r} has no train split")
            fit_spec = DatasetSpec(self.id_spec.name, "train", self.id_spec.options)
        return BoundDetector(entry, model, background, fit_spec, self.cfg.data_root, self.cfg.limit,
                             self.cfg.batch_size)

    def scores(self, model, detector, spec: DatasetSpec, id_digest: Optional[str] = None) -> tuple[np.ndarray, str]:
        """Scores and weights digest of ``spec``; cache-only models must match the ID scores' digest."""
        cfg = self.cfg
        if isinstance(model, _CachedModel):
            key = ScoreKey(model.label, detector.name, spec, cfg.limit)
            entry = read_or_recompute(self.cache, key, id_digest, cfg.batch_size)
            digest = entry.meta.get("digest", "")
            if entry.meta.get("fingerprint") != key.fingerprint:
                raise OEError(f"cached scores of {spec.text} are stale: dataset fingerprint "
                              f"{entry.meta.get('fingerprint')} != {key.fingerprint}")
            if id_digest is not None and digest != id_digest:
                raise OEError(f"cached scores of {spec.text} come from other weights than the ID scores "
                              f"({digest[:12]} vs {id_digest[:12]}); re-evaluate with --ckpt")
            return entry.scores, digest
        scores, status = cached_scores(self.cache, model, detector, spec, data_root=cfg.data_root, limit=cfg.limit,
                                       batch_size=cfg.batch_size, progress=cfg.progress)
        print(f"  {model.label} / {detector.name} / {spec.text}: {len(scores)} scores ({status})", flush=True)
        return scores, detector.digest

    def rows(self, model, entry: DetectorEntry, background: Optional[DensityModel]) -> list[SetResult]:
        cfg = self.cfg
        detector = self.bind(model, entry, background)
        id_scores, id_digest = self.scores(model, detector, self.id_spec)
        out = []
        for spec in self.oods:
            row = SetResult(model.label, detector.name, spec.to_dict(), spec.display)
            try:
                ood_scores, row.digest = self.scores(model, detector, spec, id_digest)
            except OEError as e:  # missing data, or (cache-only models) missing/stale cached scores
                if cfg.strict or not (isinstance(e, DataError) or isinstance(model, _CachedModel)):
                    raise
                row.status, row.note = "missing", str(e)
                print(f"  {model.label} / {detector.name} / {spec.text}: skipped ({e})", flush=True)
                out.append(row)
                continue
            per_trial = len(id_scores) // cfg.ratio
            if len(ood_scores) < per_trial and cfg.num_to_avg > 1:
                warnings.warn(f"OOD set {spec.text} has {len(ood_scores)} images, fewer than the {per_trial} each "
                              f"protocol trial draws (len(ID) // {cfg.ratio}): every trial uses the same images, so "
                              "the ± over trials is 0 and says nothing", stacklevel=2)
            row.protocol = evaluate_protocol(id_scores, ood_scores, num_to_avg=cfg.num_to_avg, ratio=cfg.ratio,
                                             seed=cfg.seed, rule=cfg.rule, tpr=cfg.tpr).to_dict()
            out.append(row)
        return out


def _protocol(ev_settings: dict, id_scores: np.ndarray, ood_scores: np.ndarray) -> dict:
    s = ev_settings
    return evaluate_protocol(id_scores, ood_scores, num_to_avg=s["num_to_avg"], ratio=s["ratio"], seed=s["seed"],
                             rule=s["rule"], tpr=s["tpr"]).to_dict()


def reevaluate(results: str | Path, out: str | Path, cache_dir: str = "") -> Evaluation:
    """The evaluation of ``results`` recomputed from its score cache: the same settings, models and rows (sets
    skipped then stay skipped with their note), protocol values from the cached scores."""
    prev = Evaluation.load(results)
    cache = ScoreCache(cache_dir or prev.cache_dir(results))
    settings = {**prev.settings, "cache_dir": relative_to(cache.root, out)}
    ev = Evaluation(settings, copy.deepcopy(prev.models))
    id_spec = DatasetSpec.from_dict(settings["id_dataset"])
    limit = settings["limit"]
    for (label, detector), rows in prev.groups().items():
        id_entry = None
        for row in rows:
            row = copy.deepcopy(row)
            if row.ok:
                if id_entry is None:
                    id_entry = read_or_recompute(cache, ScoreKey(label, detector, id_spec, limit), row.digest)
                key = ScoreKey(label, detector, DatasetSpec.from_dict(row.ood), limit)
                entry = read_or_recompute(cache, key, row.digest)
                for e, k in ((id_entry, ScoreKey(label, detector, id_spec, limit)), (entry, key)):
                    if e.meta.get("fingerprint") != k.fingerprint:
                        raise OEError(f"cached scores {str(cache.path(k))!r} are of other images than "
                                      f"{str(results)!r} evaluated (dataset options or limit changed)")
                if entry.meta.get("digest") != id_entry.meta.get("digest"):
                    raise OEError(f"cached scores of {row.ood['text']} and of the ID set of {label}/{detector} "
                                  "come from different weights; re-evaluate with --ckpt")
                row.digest = entry.meta.get("digest", "")
                row.protocol = _protocol(settings, id_entry.scores, entry.scores)
            ev.rows.append(row)
    return ev


def run_evaluation(cfg: EvaluateConfig) -> Evaluation:
    """Evaluate every model and detector of ``cfg``; returns the results (not yet written)."""
    if cfg.from_results:
        check_writable_folder(cfg.out, "--out")
        return reevaluate(cfg.from_results, cfg.out, cfg.cache_dir)
    if not cfg.ckpt and not cfg.cached:
        raise ConfigError("nothing to evaluate: give --ckpt LABEL=PATH, --cached LABEL or --from-results FILE")
    for name in cfg.detectors:
        if name != "auto" and get_detector(name).missing:  # unknown or unavailable names fail here, before any work
            raise ConfigError(f"detector {name!r} is not available: {get_detector(name).missing}")
    id_spec = DatasetSpec.parse(cfg.id_dataset, default_split="test")
    oods = ood_suite(id_spec, cfg.ood)
    out = Path(cfg.out)
    cache = ScoreCache(cfg.cache_dir or out / "score_cache")
    check_writable_folder(out, "--out")
    check_writable_folder(cache.root, "--cache-dir")

    models: list = []
    labels: set[str] = set()
    device = resolve_device(cfg.device) if cfg.ckpt or cfg.background else None
    for text in cfg.ckpt:
        label, path, options = _label_and_path(text)
        models.append(load_model(path, label, device, options, trust_pickle=cfg.trust_pickle))
    models += _cached_models(cache, cfg.cached, id_spec)
    for m in models:
        if m.label in labels:
            raise ConfigError(f"model label {m.label!r} is used twice; name models with LABEL=PATH")
        labels.add(m.label)
    background: Optional[ScoringModel] = None
    if cfg.background:
        background = load_model(cfg.background, "background", device)
        if background.kind != DensityModel.kind:
            raise ConfigError(f"--background {cfg.background!r} is a {background.kind}, not a density model")

    plan = []
    for m in models:
        dets = (_cached_detectors(cache, m, id_spec, cfg.detectors) if isinstance(m, _CachedModel)
                else [d for d in detectors_for(m.kind, cfg.detectors) if d.scores_model(m.module)])
        plan += [(m, d) for d in dets]
    kinds = {m.kind for m in models}
    for name in cfg.detectors:
        if name != "auto" and get_detector(name).kind not in kinds:
            raise ConfigError(f"detector {name!r} scores {get_detector(name).kind} models, but none was given")
        if name != "auto" and not any(d.name == name for _, d in plan) and \
                not any(isinstance(m, _CachedModel) for m in models):
            raise ConfigError(f"detector {name!r} applies to none of the given models "
                              f"({get_detector(name).description})")
    if not plan:
        raise ConfigError("no (model, detector) pair to evaluate: the detectors do not fit the models' kinds "
                          "or the cache holds no scores for them")
    if any(d.needs_background and not isinstance(m, _CachedModel) for m, d in plan) and background is None:
        raise ConfigError("the likelihood_ratio detector needs --background (a density checkpoint)")
    if any(d.needs_fit and not isinstance(m, _CachedModel) for m, d in plan) and \
            "train" not in dataset_info(id_spec.name).splits:
        raise ConfigError(f"fitted detectors ({', '.join(sorted({d.name for _, d in plan if d.needs_fit}))}) "
                          f"are fitted on the in-distribution training set, but {id_spec.name!r} has no train split")

    return _run_plan(cfg, id_spec, oods, cache, models, plan, background)


def _run_plan(cfg: EvaluateConfig, id_spec: DatasetSpec, oods: list[DatasetSpec], cache: ScoreCache, models: list,
              plan: list, background: Optional[DensityModel]) -> Evaluation:
    ev = Evaluation(
        settings={"id_dataset": id_spec.to_dict(), "ood": [s.to_dict() for s in oods], "num_to_avg": cfg.num_to_avg,
                  "ratio": cfg.ratio, "seed": cfg.seed, "rule": cfg.rule, "tpr": cfg.tpr, "limit": cfg.limit,
                  "cache_dir": relative_to(cache.root, cfg.out),
                  "background": getattr(background, "digest", "")},
        models=[{"label": m.label, "kind": m.kind, "digest": getattr(m, "digest", ""),
                 "source": "cache" if isinstance(m, _CachedModel) else "checkpoint" if getattr(m, "path", "")
                 else "python"} for m in models])
    evaluator = _Evaluator(cfg, id_spec, oods, cache)
    for m, d in plan:
        ev.rows += evaluator.rows(m, d, background)
    return ev


def list_detectors() -> str:
    """One line per registered detector: name, kind, source and needs, description, units."""
    lines = []
    for name in DETECTORS.names():
        d = get_detector(name)
        tags = [d.kind] + [t for t, on in (("paper", d.in_paper), (d.source, d.source != "suite"),
                                           ("fitted on the ID train split", d.needs_fit),
                                           ("needs --background", d.needs_background)) if on]
        state = f" -- NOT INSTALLED: {d.missing}" if d.missing else ""
        lines.append(f"{name:18s} [{', '.join(tags)}] {d.description}; units: {d.units}{state}")
    return "\n".join(lines)


@dataclass
class ScoreFunctionModel:
    """A model known only by its score function: uint8 batch (B, 3, H, W) -> per-image scores [B], higher =
    more anomalous (scored by the built-in ``score`` detector, :data:`SCORE_FUNCTION`)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    label: str = "function"
    digest: str = ""
    path: str = ""
    kind: ClassVar[str] = "function"

    @property
    def module(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.fn

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def for_dataset(self, fed_raw: bool) -> "ScoreFunctionModel":
        return self

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the function takes the uint8 images as they are


class _FunctionDetector(Detector):
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.model(x)).reshape(-1)


# Not registered: it scores only the functions handed to evaluate().
SCORE_FUNCTION = DetectorEntry("score", "function", _FunctionDetector, units="score", paper_name="score",
                               description="a score function handed to analysis.evaluate.evaluate()")


def _state_digest(net: nn.Module) -> str:
    h = hashlib.sha256()
    for key, t in net.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def evaluate(models: Mapping[str, Any], *, id_dataset: str = "cifar10", ood: Sequence[str] = ("default",),
             detectors: Sequence[str] = ("auto",), data_root: str = "", out: str = "", cache_dir: str = "",
             **settings: Any) -> Evaluation:
    """Evaluate models handed over in Python with the reference protocol; returns the results (and writes the
    tables to ``out`` when given).

    ``models`` maps labels to any ``nn.Module`` classifier (fed CIFAR-normalised images; logits out; scored by
    ``detectors``, default MSP), a score function ``fn(uint8 batch (B, 3, H, W)) -> scores [B]`` (higher = more
    anomalous), or an :class:`analysis.load_model.ClassifierModel` / :class:`~analysis.load_model.DensityModel`.
    ``settings``: any other option of :class:`EvaluateConfig` (``num_to_avg``, ``ratio``, ``seed``, ``limit``,
    ``strict``, ``batch_size``, ...).  Scores are cached in ``cache_dir`` when given, else in a temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="oe-evaluate-") as tmp:
        cfg = EvaluateConfig(id_dataset=id_dataset, ood=list(ood), detectors=list(detectors), data_root=data_root,
                             out=out or tmp, cache_dir=cache_dir or str(Path(tmp) / "score_cache"),
                             **{"progress": False, **settings})
        validate(cfg)
        id_spec = DatasetSpec.parse(cfg.id_dataset, default_split="test")
        oods = ood_suite(id_spec, cfg.ood)
        wrapped, plan = [], []
        for label, m in models.items():
            if isinstance(m, (ClassifierModel, DensityModel)):
                m = dataclasses.replace(m, label=label)
            elif isinstance(m, nn.Module):
                m = ClassifierModel(m.eval(), label=label, digest=_state_digest(m))
            elif callable(m):
                m = ScoreFunctionModel(m, label=label, digest=f"python:{label}")
            else:
                raise ConfigError(f"model {label!r}: expected an nn.Module, a score function or a scoring model, "
                                  f"got {type(m).__name__}")
            wrapped.append(m)
            plan += [(m, SCORE_FUNCTION)] if isinstance(m, ScoreFunctionModel) else \
                [(m, d) for d in detectors_for(m.kind, cfg.detectors) if d.scores_model(m.module)]
        ev = _run_plan(cfg, id_spec, oods, ScoreCache(cfg.cache_dir), wrapped, plan, None)
        if out:
            write_evaluation(ev, out)
        return ev


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(EvaluateConfig, argv, prog="python -m analysis.evaluate", description=__doc__)
    if cfg.list_detectors:
        print(list_detectors())
        return 0
    ev = run_evaluation(cfg)
    paths = write_evaluation(ev, cfg.out)
    print("\n".join(t.markdown() for t in evaluation_tables(ev)))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
