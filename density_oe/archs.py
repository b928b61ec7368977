"""The registry of density families (``--arch``) and what the trainer needs to know about each.

Everything downstream of a density model (the OE trainer, scoring, sampling, the detectors, the mini-study) uses
one quantity: the per-image log-likelihood in nats of 8-bit images on the [-1, 1] grid, ``model.log_prob(x) ->
[B]``.  Every family has that method:

| name       | ``forward(x)`` returns  | ``log_prob(x)``                                                        |
|------------|-------------------------|------------------------------------------------------------------------|
| `pixelcnn` | DMOL parameters         | exact discretized mixture of logistics (:mod:`density_oe.pixelcnn.dmol`) |
| `glow`     | the log-likelihood      | uniform dequantisation, a lower bound (:mod:`density_oe.glow.model`)  |
| `diffusion`| the log-likelihood      | the VDM bound on the discrete likelihood (:mod:`density_oe.diffusion.model`) |
| `vae`      | the bound               | importance-weighted bound ``L_K``, a lower bound (:mod:`density_oe.vae`) |

An entry here says how to build the network from a run config, how to initialise it on data, and which image
sides it accepts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from oe_core.cli_config import config_from_dict
from oe_core.errors import OEError
from oe_core.name_registry import Registry

from .diffusion import Diffusion, DiffusionConfig
from .diffusion import sample_family as diffusion_sample
from .glow import Glow, GlowConfig
from .glow import data_dependent_init as glow_data_init
from .pixelcnn import PixelCNNConfig, PixelCNNpp
from .pixelcnn import data_dependent_init as pixelcnn_data_init
from .pixelcnn.sampling import sample_family as pixelcnn_sample
from .vae import VAE, VAEConfig
from .vae import data_dependent_init as vae_data_init

DEFAULT_ARCH = "pixelcnn"


@torch.inference_mode()
def sample_latent(model: nn.Module, n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device, options) -> torch.Tensor:
    """The sampler of the families whose network samples its latents in one pass, ``model.sample(n, height,
    width, temperature, generator)`` (Glow, VAE): reads ``options.temperature``."""
    return model.to(device).eval().sample(n, height, width, options.temperature, generator)


@dataclass(frozen=True)
class DensityArch:
    """One density family: its config class, network class, data-dependent init and size constraint."""

    name: str
    display: str                                        # for tables and legends
    config_cls: type                                    # the dataclass of its hyperparameters
    build: type                                         # the nn.Module class, built from its config
    data_init: Optional[Callable[[nn.Module, torch.Tensor], None]]   # None: no data-dependent initialisation
    multiple: Callable[[Any], int]                      # image sides must be multiples of this
    init_batch_size: int                                # default images of the data-dependent init batch
    # (model, n, height, width, generator, device, options) -> (n, 3, height, width) images in [-1, 1], with
    # ``options`` the density_oe.sample config; None: the family cannot sample
    sample: Optional[Callable[..., torch.Tensor]] = None
    sample_options: tuple[str, ...] = ()               # the density_oe.sample options its sampler reads
    free_fields: tuple[str, ...] = ()                   # config fields that leave the weights as they are: an OE
                                                        # fine-tune may set them apart from its --init

    def same_weights(self, a: Any, b: Any) -> bool:
        """Whether configs ``a`` and ``b`` of this family describe the same weights (equal but for free fields)."""
        if type(a) is not type(b):
            return False
        return all(getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a)
                   if f.name not in self.free_fields)

    def config(self, cfg: Any) -> Any:
        """The architecture's own config taken from a larger one (a run config, or a dict from config.json)."""
        if isinstance(cfg, dict):
            return config_from_dict(self.config_cls, cfg)
        return self.config_cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(self.config_cls)})


ARCHS: Registry[DensityArch] = Registry("density architecture")
ARCHS.add("pixelcnn", DensityArch("pixelcnn", "PixelCNN++", PixelCNNConfig, PixelCNNpp, pixelcnn_data_init,
                                  lambda cfg: 4, init_batch_size=16, sample=pixelcnn_sample,
                                  sample_options=("amp",)))
ARCHS.add("glow", DensityArch("glow", "Glow", GlowConfig, Glow, glow_data_init, lambda cfg: cfg.multiple,
                              init_batch_size=256, sample=sample_latent, sample_options=("temperature",)))
ARCHS.add("vae", DensityArch("vae", "VAE", VAEConfig, VAE, vae_data_init, lambda cfg: cfg.multiple,
                             init_batch_size=16, free_fields=("vae_iw_samples",), sample=sample_latent,
                             sample_options=("temperature",)))
ARCHS.add("diffusion", DensityArch("diffusion", "Diffusion", DiffusionConfig, Diffusion, None,
                                   lambda cfg: cfg.multiple, init_batch_size=1, sample=diffusion_sample,
                                   sample_options=("steps", "amp"),
                                   free_fields=("diffusion_t_samples", "diffusion_train_t_samples")))


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

