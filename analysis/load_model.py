"""The models detectors score with, and the one place analysis loads them from checkpoints.

A :class:`ClassifierModel` or :class:`DensityModel` holds the network (``module``, handed to the registered
detectors of its ``kind``) and turns uint8 batches (B, 3, H, W) into the network's inputs on its device
(:meth:`inputs`: the CIFAR mean/std normalisation, or ``x/127.5 - 1`` for sets the reference feeds raw, for
classifiers; [-1, 1] for density models, whose ``module.log_prob(x)`` gives nats per image).
:func:`load_model` recognises the kind from the checkpoint and loads it with its package's own loader
(:func:`classifiers_oe.weights.load_classifier`, :func:`density_oe.weights.load_density_model`); the weights
are identified by the checkpoint's sha256.  A run's ``model.safetensors`` (or a folder holding only it, its
``config.json`` and card) loads the same way, through :func:`oe_core.run.load_checkpoint`.
A user's own classifier file (a plain state dict, a whole model, a torchvision model's state dict; see
:func:`classifiers_oe.weights.load_user_classifier`) loads when ``options`` name its architecture or the file
is not a suite checkpoint; its digest is the sha256 of the file and the options.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional, Union

import torch
from torch import nn

from classifiers_oe.config import KIND as CLASSIFIER
from classifiers_oe.inputs import model_input
from classifiers_oe.weights import load_classifier, load_user_classifier
from density_oe.config import KIND as DENSITY
from density_oe.weights import load_density_model
from oe_core.data.transforms import to_unit_range
from oe_core.errors import CheckpointError
from oe_core.run import load_checkpoint
from oe_core.run.checkpoint import checkpoint_format
from oe_core.run.release import suite_safetensors


def module_device(net: nn.Module) -> torch.device:
    """The device of ``net``'s first parameter or buffer (CPU for a module holding neither)."""
    first = next(itertools.chain(net.parameters(), net.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


class _HoldsNet:
    """What both kinds of model share: the network (``module``, handed to the detectors) and its device."""

    net: nn.Module

    @property
    def module(self) -> nn.Module:
        return self.net

    @property
    def device(self) -> torch.device:
        return module_device(self.net)


@dataclass
class ClassifierModel(_HoldsNet):
    """A classifier in eval mode.  ``normalized=False`` feeds ``x/127.5 - 1`` instead of the mean/std
    normalisation (the reference feeds its noise sets raw; see :meth:`for_dataset`)."""

    net: nn.Module
    label: str = "classifier"
    digest: str = ""
    normalized: bool = True
    path: str = ""                 # the checkpoint it was loaded from ("" for models handed over in Python)
    kind: ClassVar[str] = CLASSIFIER

    def for_dataset(self, fed_raw: bool) -> "ClassifierModel":
        return dataclasses.replace(self, normalized=not fed_raw)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return model_input(x.to(self.device), self.normalized)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.inputs(x))


@dataclass
class DensityModel(_HoldsNet):
    """A density model in eval mode: ``net.log_prob(v)`` gives per-image log-likelihoods in nats of images
    ``v`` in [-1, 1] (the density-model interface of :mod:`density_oe.archs`: ``PixelCNNpp``, ``Glow``)."""

    net: nn.Module
    label: str = "density"
    digest: str = ""
    path: str = ""                 # the checkpoint it was loaded from ("" for models handed over in Python)
    kind: ClassVar[str] = DENSITY

    def for_dataset(self, fed_raw: bool) -> "DensityModel":
        return self  # density models always see [-1, 1]

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return to_unit_range(x.to(self.device))

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image log-likelihood in nats, shape [B]."""
        return self.net.log_prob(self.inputs(x))


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


def _file_digest(path: Path, options: dict) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(repr(sorted(options.items())).encode())
    return h.hexdigest()


def load_model(path: str | Path, label: str, device: torch.device,
               options: Optional[dict[str, str]] = None, trust_pickle: bool = False) -> ScoringModel:
    """Load a checkpoint file or run folder as a scoring model (kind read from the checkpoint), or a user's own
    classifier file (``options``: its architecture, e.g. ``{"arch": "wrn", "depth": "40", "widen": "2"}``).

    Nothing is unpickled, except a user's whole pickled model when ``trust_pickle`` (see
    :func:`classifiers_oe.weights.load_user_classifier`)."""
    path = Path(path).expanduser()
    if path.is_file() and (options or (checkpoint_format(path) is None and not suite_safetensors(path))):
        net = load_user_classifier(path, options, device, trust_pickle=trust_pickle)
        return ClassifierModel(net=net, label=label, digest=_file_digest(path, options or {}),
                               path=str(path.resolve()))
    state = load_checkpoint(path)
    kind = state.get("kind")
    if kind not in _LOADERS:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a model of kind {kind!r}; "
                              f"evaluable kinds: {', '.join(_LOADERS)}")
    cls, loader = _LOADERS[kind]
    return cls(net=loader(path, state, device), label=label, digest=state["sha256"], path=str(path.resolve()))
