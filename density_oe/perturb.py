"""Input perturbation for the likelihood-ratio background model (Ren et al. 2019): ``--perturb-rate`` of
``python -m density_oe.train`` trains a model on perturbed images, the background model that
the evaluation's ``--background`` divides out."""
from __future__ import annotations

from typing import Optional

import torch

from oe_core.errors import OEError


def mutate(x: torch.Tensor, rate: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Replace each value of the uint8 images ``x`` with probability ``rate`` by a uniform draw from 0..255.

    Values are perturbed independently (per colour channel, as in Ren et al.'s image code, which adds a
    uniform 0..255 offset modulo 256 -- the same distribution as replacing the value).  The draws come from
    ``generator`` on its own device (CPU by default) in a fixed order -- mask, then values -- so the result
    does not depend on ``x``'s device.  Returns a new uint8 tensor of ``x``'s shape on ``x``'s device.
    """
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise OEError(f"mutate expects a torch.uint8 tensor, got {got}")
    if not 0.0 <= float(rate) <= 1.0:
        raise OEError(f"mutate: rate must be in [0, 1], got {rate}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    mask = torch.rand(x.shape, generator=generator, device=gen_device) < float(rate)
    values = torch.randint(0, 256, x.shape, generator=generator, device=gen_device, dtype=torch.uint8)
    return torch.where(mask.to(x.device), values.to(x.device), x)
