"""The VAE's decoder distribution: a factorised discretised logistic over the 256 values of every sub-pixel.

The decoder network outputs 6 channels per pixel: the means (R, G, B) and the log-scales (R, G, B) of one logistic
per sub-pixel.  ``p(x|z) = prod over sub-pixels of the logistic's mass on the sub-pixel's 8-bit bin``, with the
edge bins (values 0 and 255) extended to -inf and +inf, so the 256 masses sum to 1.  No mixture and no coupling
between R, G and B: given ``z`` the sub-pixels are independent, so everything the image's pixels share must
pass through the latents (an autoregressive or channel-coupled decoder could model it alone, and the posterior
would collapse).

The bins, edge cases and thresholds are the DMOL's (:mod:`density_oe.pixelcnn.dmol`): a single component with
logit 0 and coupling coefficients 0 (``tanh(0) = 0``, ``log_softmax`` of one logit = 0), so its fast kernel with
its own backward computes the likelihood, and :func:`~density_oe.pixelcnn.dmol.sub_pixel_log_prob` the same
terms one sub-pixel at a time.
"""
from __future__ import annotations

from typing import Optional

import torch

from oe_core.errors import OEError

from ..pixelcnn import dmol

OUT_CHANNELS = 6  # means and log-scales of R, G, B


def _split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if out.dim() != 4 or out.shape[1] != OUT_CHANNELS:
        raise OEError(f"VAE decoder output must have shape (N, {OUT_CHANNELS}, H, W), got {tuple(out.shape)}")
    return out[:, :3], out[:, 3:]


def dmol_params(out: torch.Tensor) -> torch.Tensor:
    """The decoder output ``(N, 6, H, W)`` as DMOL parameters ``(N, 10, H, W)`` of one component: logit 0, and per
    channel (mean, log-scale, coupling coefficient 0)."""
    mean, log_scale = _split(out.float())
    zero = torch.zeros_like(mean[:, :1])
    parts = [zero]
    for c in range(3):
        parts += [mean[:, c:c + 1], log_scale[:, c:c + 1], zero]
    return torch.cat(parts, dim=1)


def log_prob(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x|z)`` ``[N]`` in nats of images ``x`` ``(N, 3, H, W)`` in [-1, 1] (float32, also under autocast)."""
    return dmol.log_prob(dmol_params(out), x)


def sub_pixel_log_prob(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x_i|z)`` ``(N, 3, H, W)`` of every sub-pixel (its sum over a image is :func:`log_prob`)."""
    mean, log_scale = _split(out)
    return dmol.sub_pixel_log_prob(x, mean, log_scale)


def sample(out: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One draw ``(N, 3, H, W)`` in [-1, 1] from the decoder distribution (random numbers from the CPU
    ``generator``; see :func:`density_oe.pixelcnn.dmol.sample`)."""
    return dmol.sample(dmol_params(out), generator)
