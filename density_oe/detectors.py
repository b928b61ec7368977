"""The density-model detectors: bits/dim, likelihood ratio and complexity-corrected likelihood, as objects.

A density detector wraps any model with ``log_prob(x) -> Tensor[B]`` (nats per image, images ``x`` in [-1, 1]:
``PixelCNNpp``, ``Glow``) and scores in bits per dimension, higher = more anomalous, in float64.

* ``bpd`` -- ``-log2 p(x) / D`` (``D = C H W``): the OE paper's BPP score (Table 5).
* ``likelihood_ratio`` -- ``bpd_model(x) - bpd_background(x)`` (Ren et al. 2019: the negated log-likelihood
  ratio against a background model trained on perturbed inputs, :func:`analysis.perturb.mutate`).
* ``complexity_png``, ``complexity_zlib`` -- ``bpd_model(x) - L(x)`` (Serra et al. 2020), ``L`` the compressed
  length of the 8-bit image in bits/dim (:mod:`density_oe.complexity`).  They belong with the density model
  because they correct its likelihood; the compressors themselves need no model.
"""
from __future__ import annotations

import torch

from oe_core.detectors import Detector, register_detector

from .complexity import COMPRESSORS, complexity_bits_per_dim
from .config import KIND
from .dmol import bits_per_dim


def _bpd(model, x: torch.Tensor) -> torch.Tensor:
    return bits_per_dim(model.log_prob(x).double(), x[0].numel())


@register_detector("bpd", kind=KIND, units="bits per dim", paper_name="BPP", description="-log2 p(x) / (C H W)",
                   in_paper=True)
class BitsPerDim(Detector):
    """Bits per dimension ``-log2 p(x) / D``."""

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return _bpd(self.model, x)


@register_detector("likelihood_ratio", kind=KIND, units="bpd(model) - bpd(background) (bits per dim)",
                   paper_name="LLR", description="-(log p(x) - log p_background(x)) / (C H W ln 2) (Ren et al. 2019)",
                   needs_background=True)
class LikelihoodRatio(Detector):
    """``bpd_model(x) - bpd_background(x)``: ``LikelihoodRatio(model, background=...)``."""

    def __init__(self, model, background):
        super().__init__(model)
        self.background = background

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return _bpd(self.model, x) - _bpd(self.background, x)


class ComplexityCorrected(Detector):
    """``bpd_model(x) - L(x)``, ``L`` the ``compressor``'s length of the 8-bit image in bits/dim."""

    def __init__(self, model, compressor: str = "png"):
        super().__init__(model)
        self.compressor = compressor

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        x8 = torch.round((x.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)  # exact for x = k/127.5 - 1
        return _bpd(self.model, x).cpu() - complexity_bits_per_dim(x8, self.compressor)


for _name in COMPRESSORS:
    register_detector(f"complexity_{_name}", kind=KIND, units=f"bpd(model) - {_name.upper()} bits per dim",
                      paper_name=f"S ({_name.upper()})",
                      description=f"bits/dim minus the {_name} compressed length in bits/dim (Serra et al. 2020)",
                      options={"compressor": _name})(ComplexityCorrected)
