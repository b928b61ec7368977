"""The detector registry: one entry per OOD score, with its metadata.

A detector maps a model and a uint8 batch (B, 3, H, W) to per-image scores [B], **higher = more anomalous**::

    score(model, x, background) -> Tensor[B]

``model`` is a :class:`analysis.models.ClassifierModel` or :class:`analysis.models.DensityModel` (the
detector's ``kind``); ``background`` is a density model for detectors with ``needs_background`` and ``None``
otherwise.

Classifier scores are computed from the logits cast to float64 (deliberate difference from the reference,
which takes the softmax in float32: there the MSP of confident images rounds to exactly 1.0 once the logit
gap exceeds about 17, and those images tie).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from oe_core.errors import OEError
from oe_core.registry import Registry

KINDS = ("classifier", "density")
ScoreFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Detector:
    name: str
    kind: str              # the model kind it scores: "classifier" or "density"
    fn: ScoreFn
    units: str             # axis label of the score, with units
    paper_name: str        # how papers call it (tables and legends)
    description: str
    needs_background: bool = False
    in_paper: bool = False  # one of the OE paper's scores (chosen by ``--detectors auto``)

    def score(self, model, x: torch.Tensor, background=None) -> torch.Tensor:
        """Per-image scores [B] as float64 on the CPU."""
        if model.kind != self.kind:
            raise OEError(f"detector {self.name!r} scores {self.kind} models, but {model.label!r} is a {model.kind}")
        if self.needs_background and background is None:
            raise OEError(f"detector {self.name!r} needs a background density model (--background)")
        out = self.fn(model, x, background)
        if out.shape != (x.shape[0],):
            raise OEError(f"detector {self.name!r} returned shape {tuple(out.shape)} for a batch of {x.shape[0]}")
        return out.detach().to("cpu", torch.float64)


DETECTORS: Registry[Detector] = Registry("detector")


def register_detector(name: str, *, kind: str, units: str, paper_name: str, description: str,
                      needs_background: bool = False, in_paper: bool = False) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator registering ``fn(model, x, background) -> Tensor[B]`` as detector ``name``."""
    if kind not in KINDS:
        raise ValueError(f"detector {name!r}: kind must be one of {KINDS}, got {kind!r}")

    def wrap(fn: ScoreFn) -> ScoreFn:
        DETECTORS.add(name, Detector(name, kind, fn, units, paper_name, description, needs_background, in_paper))
        return fn

    return wrap


def get_detector(name: str) -> Detector:
    return DETECTORS.get(name)


def detectors_for(kind: str, names: Optional[list[str]] = None) -> list[Detector]:
    """The detectors of ``names`` that score ``kind`` models; ``["auto"]`` or ``None``: the paper's."""
    if names is None or list(names) == ["auto"]:
        return [d for d in map(DETECTORS.get, DETECTORS.names()) if d.kind == kind and d.in_paper]
    return [d for d in map(DETECTORS.get, names) if d.kind == kind]
