"""Autoregressive PixelCNN++ sampling (see :mod:`density_oe.sample` for the row trick)."""
from __future__ import annotations

import torch

from oe_core.progress import progress_bar
from oe_core.run import autocast

from . import dmol
from .weight_norm import frozen_weights


@torch.inference_mode()
def sample_images(model: torch.nn.Module, n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device, amp: str = "none", progress: bool = False) -> torch.Tensor:
    """``n`` samples ``(n, 3, height, width)`` in [-1, 1] (not rounded to 8 bits, as in the original code)."""
    model = model.to(device).eval()
    x = torch.zeros(n, 3, height, width, device=device)
    with frozen_weights(model):
        for i in progress_bar(range(height), "sampling rows", progress):
            rows = min(height, -(-(i + 1) // 4) * 4)
            for j in range(width):
                with autocast(device, amp):
                    params = model(x[:, :, :rows])
                x[:, :, i, j] = dmol.sample(params[:, :, i:i + 1, j:j + 1], generator)[:, :, 0, 0]
    return x


def sample_family(model: torch.nn.Module, n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device, options) -> torch.Tensor:
    """The sampler of the ``pixelcnn`` family (:class:`density_oe.archs.DensityArch`): reads ``options.amp`` and
    ``options.progress``."""
    return sample_images(model, n, height, width, generator, device, options.amp, options.progress)
