"""The models detectors score with, and the one place that loads them from checkpoints.

A detector sees either a :class:`ClassifierModel` (``logits(x)``) or a :class:`DensityModel`
(``log_prob(x)`` in nats per image); both take uint8 batches (B, 3, H, W) and do their own input scaling on
their device.  :func:`load_model` recognises the kind from the checkpoint (run engine format: ``kind``,
``config``, ``model``, ``eval_model``, ``meta``) and identifies the weights by the checkpoint's sha256.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Union

import torch
from torch import nn

from classifiers_oe.config import KIND as CLASSIFIER
from classifiers_oe.inputs import model_input
from classifiers_oe.weights import load_classifier
from density_oe.archs import arch_for_model
from density_oe.config import KIND as DENSITY
from density_oe.dmol import log_prob as dmol_log_prob
from density_oe.weights import load_density_model
from oe_core.data.transforms import to_unit_range
from oe_core.errors import CheckpointError
from oe_core.run import load_checkpoint


def module_device(net: nn.Module) -> torch.device:
    """The device of ``net``'s first parameter or buffer (CPU for a module holding neither)."""
    first = next(itertools.chain(net.parameters(), net.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


@dataclass
class ClassifierModel:
    """A classifier in eval mode.  ``normalized=False`` feeds ``x/127.5 - 1`` instead of the mean/std
    normalisation (the reference feeds its noise sets raw; see :meth:`for_dataset`)."""

    net: nn.Module
    label: str = "classifier"
    digest: str = ""
    normalized: bool = True
    path: str = ""                 # the checkpoint it was loaded from ("" for models handed over in Python)
    kind: ClassVar[str] = CLASSIFIER

    @property
    def device(self) -> torch.device:
        return module_device(self.net)

    def for_dataset(self, fed_raw: bool) -> "ClassifierModel":
        return dataclasses.replace(self, normalized=not fed_raw)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(model_input(x.to(self.device), self.normalized))


@dataclass
class DensityModel:
    """A density model in eval mode: ``net`` maps images in [-1, 1] to whatever ``log_prob_fn(output, x)``
    turns into per-image log-likelihoods in nats (its architecture's likelihood, :mod:`density_oe.archs`; for
    PixelCNN++: DMOL parameters and ``dmol.log_prob``, for Glow: the log-likelihood itself)."""

    net: nn.Module
    label: str = "density"
    digest: str = ""
    log_prob_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = dmol_log_prob
    path: str = ""                 # the checkpoint it was loaded from ("" for models handed over in Python)
    kind: ClassVar[str] = DENSITY

    @property
    def device(self) -> torch.device:
        return module_device(self.net)

    def for_dataset(self, fed_raw: bool) -> "DensityModel":
        return self  # density models always see [-1, 1]

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image log-likelihood in nats, shape [B]."""
        v = to_unit_range(x.to(self.device))
        return self.log_prob_fn(self.net(v), v)


ScoringModel = Union[ClassifierModel, DensityModel]


def _load_classifier(path: Path, state: dict, device: torch.device) -> nn.Module:
    return load_classifier(path, device, state=state)[0]


def _load_density(path: Path, state: dict, device: torch.device) -> nn.Module:
    """The density model of the checkpoint's architecture, with the evaluation weights (EMA) when the run kept
    them."""
    return load_density_model(path, weights="eval", state=state)[0].to(device)


# One loader per package: each package's own (classifiers_oe.weights, density_oe.weights).
_LOADERS: dict[str, tuple[type, Callable[[Path, dict, torch.device], nn.Module]]] = {
    CLASSIFIER: (ClassifierModel, _load_classifier),
    DENSITY: (DensityModel, _load_density),
}


def load_model(path: str | Path, label: str, device: torch.device) -> ScoringModel:
    """Load a checkpoint file or run folder as a scoring model (kind read from the checkpoint)."""
    path = Path(path).expanduser()
    state = load_checkpoint(path)
    kind = state.get("kind")
    if kind not in _LOADERS:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a model of kind {kind!r}; "
                              f"evaluable kinds: {', '.join(_LOADERS)}")
    cls, loader = _LOADERS[kind]
    net = loader(path, state, device)
    source = str(path.resolve())
    if cls is DensityModel:
        return DensityModel(net=net, label=label, digest=state["sha256"], log_prob_fn=arch_for_model(net).likelihood,
                            path=source)
    return cls(net=net, label=label, digest=state["sha256"], path=source)
