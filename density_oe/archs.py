"""The density-model interface and the registry of architectures (``--arch``).

Everything downstream of a density model (the OE trainer, scoring, sampling, the detectors of
:mod:`density_oe.detectors`, the mini-study) uses one quantity: the per-image log-likelihood in nats of 8-bit
images on the [-1, 1] grid, ``log_prob(x) -> [B]``.  An architecture says how to build its network from the run
config and how to turn the network's output into that log-likelihood (``likelihood(model(x), x)``; through
``model(x)`` so DDP and ``torch.compile`` wrap the whole computation):

| name       | network output          | likelihood                                                         |
|------------|-------------------------|--------------------------------------------------------------------|
| `pixelcnn` | DMOL parameters         | exact discretized mixture of logistics (:func:`density_oe.dmol.log_prob`) |
| `glow`     | log-likelihood itself   | uniform dequantisation, a lower bound (:mod:`density_oe.glow`)      |
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from oe_core.config import config_from_dict
from oe_core.errors import OEError
from oe_core.registry import Registry

from . import dmol
from .glow import Glow, GlowConfig
from .glow import data_dependent_init as glow_data_init
from .model import ModelConfig, PixelCNNpp
from .weight_norm import data_dependent_init as pixelcnn_data_init

DEFAULT_ARCH = "pixelcnn"


def _identity_likelihood(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return out


@dataclass(frozen=True)
class DensityArch:
    """One density architecture: its config class, builder, likelihood and sampling."""

    name: str
    display: str                                        # for tables and legends
    config_cls: type                                    # the dataclass of its hyperparameters
    build: type                                         # the nn.Module class, built from its config
    likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (model(x), x) -> log p(x) [B] nats
    data_init: Callable[[nn.Module, torch.Tensor], None]
    multiple: Callable[[Any], int]                      # image sides must be multiples of this
    init_batch_size: int                                # default images of the data-dependent init batch

    def config(self, cfg: Any) -> Any:
        """The architecture's own config taken from a larger one (a run config, or a dict from config.json)."""
        if isinstance(cfg, dict):
            return config_from_dict(self.config_cls, cfg)
        return self.config_cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(self.config_cls)})

    def log_prob(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Per-image log-likelihood in nats of ``x`` ([-1, 1] grid images)."""
        return self.likelihood(model(x), x)


ARCHS: Registry[DensityArch] = Registry("density architecture")
ARCHS.add("pixelcnn", DensityArch("pixelcnn", "PixelCNN++", ModelConfig, PixelCNNpp, dmol.log_prob,
                                  pixelcnn_data_init, lambda cfg: 4, init_batch_size=16))
ARCHS.add("glow", DensityArch("glow", "Glow", GlowConfig, Glow, _identity_likelihood, glow_data_init,
                              lambda cfg: cfg.multiple, init_batch_size=256))


def get_arch(name: str) -> DensityArch:
    return ARCHS.get(name)


def arch_for_model(model: nn.Module) -> DensityArch:
    """The architecture of a built network."""
    for name in ARCHS.names():
        arch = ARCHS.get(name)
        if isinstance(model, arch.build):
            return arch
    raise OEError(f"{type(model).__name__} is not a registered density architecture ({', '.join(ARCHS.names())})")


def arch_of(config: dict | Any, default: Optional[str] = DEFAULT_ARCH) -> DensityArch:
    """The architecture a run config names (checkpoints from before ``--arch`` hold PixelCNN++)."""
    name = config.get("arch") if isinstance(config, dict) else getattr(config, "arch", None)
    return ARCHS.get(name or default)


def build_model(name: str, cfg: Any) -> nn.Module:
    """The network of architecture ``name`` with the hyperparameters found in ``cfg``."""
    arch = ARCHS.get(name)
    return arch.build(arch.config(cfg))
