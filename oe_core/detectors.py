"""OOD detectors as objects (the pytorch-ood API) and the one detector registry (docs/architecture.md, "Adding a
detector"): a detector wraps a model and turns a batch of **model inputs** into per-input anomaly scores, **higher =
more anomalous**::

    det = MSP(model)                  # the classifier package's; any nn.Module giving logits
    det.fit(loader)                   # optional: detectors with ``requires_fit`` learn from (x, y) batches
    scores = det.predict(x)           # Tensor[B]
    scores = det.predict_features(z)  # where it applies: from the logits / features the model already gave
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .errors import ConfigError
from .name_registry import Registry


class Detector(abc.ABC):
    """``Detector(model)``: ``fit(loader)`` (optional), ``predict(x) -> Tensor[B]`` (higher = more anomalous)."""

    requires_fit = False

    def __init__(self, model: Any):
        self.model = model

    def fit(self, loader: Any, device: Any = None) -> "Detector":
        """Learn from ``(x, y)`` batches of in-distribution training inputs; a no-op unless ``requires_fit``."""
        return self

    @abc.abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Scores [B] of the model inputs ``x``, higher = more anomalous."""

    def predict_features(self, z: torch.Tensor) -> torch.Tensor:
        """Scores from what the model already computed (e.g. logits), for detectors where that applies."""
        raise NotImplementedError(f"{type(self).__name__} scores model inputs only (use predict)")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)


@dataclass(frozen=True)
class DetectorEntry:
    """A registered detector: how to build it for a model, and what its scores are."""

    name: str
    kind: str                   # the checkpoint kind of the models it scores ("classifier", "density", ...)
    build_fn: Callable[..., Any]  # build_fn(model, **options) -> an object with fit/predict
    units: str                  # axis label of the score, with units
    paper_name: str             # how papers call it (tables and legends)
    description: str
    needs_background: bool = False  # build_fn(model, background=...) with a second (background) model
    needs_fit: bool = False     # fit on the in-distribution training set before scoring
    needs_grad: bool = False    # predict backpropagates to the inputs (not under torch.no_grad)
    in_paper: bool = False      # one of the OE paper's scores (chosen by ``--detectors auto``)
    source: str = "suite"       # "suite" or the library it comes from ("pytorch-ood")
    missing: str = ""           # non-empty: not usable here, and this says how to add it
    options: dict = field(default_factory=dict)  # fixed options passed to build_fn
    applies_to: Optional[Callable[[Any], bool]] = None  # which networks of its kind it scores (None: all)

    def scores_model(self, net: Any) -> bool:
        """Whether the detector scores the network ``net`` (of its kind): e.g. an encoder-based density score
        applies to VAEs only.  Evaluations skip the other models."""
        return self.applies_to is None or bool(self.applies_to(net))

    def build(self, model: Any, background: Any = None) -> Any:
        """A detector object for ``model`` (and ``background`` when ``needs_background``)."""
        if self.missing:
            raise ConfigError(f"detector {self.name!r} is not available: {self.missing}")
        if self.needs_background:
            if background is None:
                raise ConfigError(f"detector {self.name!r} needs a background density model (--background)")
            return self.build_fn(model, background=background, **self.options)
        return self.build_fn(model, **self.options)


DETECTORS: Registry[DetectorEntry] = Registry("detector")


def register_detector(name: str, *, kind: str, units: str, paper_name: str, description: str,
                      **meta: Any) -> Callable:
    """Decorator registering a detector class (or factory) ``build_fn(model, **options)`` as ``name``."""
    def wrap(build_fn: Callable) -> Callable:
        DETECTORS.add(name, DetectorEntry(name, kind, build_fn, units, paper_name, description, **meta))
        return build_fn
    return wrap


def get_detector(name: str) -> DetectorEntry:
    return DETECTORS.get(name)


def detectors_for(kind: str, names: Optional[list[str]] = None) -> list[DetectorEntry]:
    """The detectors of ``names`` that score ``kind`` models; ``["auto"]`` or ``None``: the paper's."""
    if names is None or list(names) == ["auto"]:
        return [d for d in map(DETECTORS.get, DETECTORS.names()) if d.kind == kind and d.in_paper]
    return [d for d in map(DETECTORS.get, names) if d.kind == kind]
