"""The density-model detectors: bits/dim, likelihood ratio and complexity-corrected likelihood, as objects.

A density detector wraps any model with ``log_prob(x) -> Tensor[B]`` (nats per image, images ``x`` in [-1, 1]:
``PixelCNNpp``, ``Glow``) and scores in bits per dimension, higher = more anomalous, in float64.

* ``bpd`` -- ``-log2 p(x) / D`` (``D = C H W``): the OE paper's BPP score (Table 5).
* ``likelihood_ratio`` -- ``bpd_model(x) - bpd_background(x)`` (Ren et al. 2019: the negated log-likelihood
  ratio against a background model trained on perturbed inputs, ``density_oe.train --perturb-rate``,
  :func:`density_oe.perturb.mutate`).
* ``complexity_png``, ``complexity_zlib`` -- ``bpd_model(x) - L(x)`` (Serra et al. 2020), ``L`` the compressed
  length of the 8-bit image in bits/dim (:mod:`density_oe.complexity`).  They belong with the density model
  because they correct its likelihood; the compressors themselves need no model.
* ``typicality``, ``typicality_m2/_m10/_m25`` -- the typicality test (Nalisnick et al. 2019,
  :mod:`density_oe.typicality`): ``|mean bpd of M inputs - Ĥ|``, ``Ĥ`` the mean bpd of the in-distribution
  training images (fitted); M = 1 is the single-input form.  Two-sided: it also flags inputs that are *more*
  likely than typical (SVHN under a CIFAR-10 model).

Every one of them reads bits/dim through :func:`density_oe.units.model_bits_per_dim`, the route
``density_oe.score`` takes too.
"""
from __future__ import annotations

import torch

from oe_core.detectors import Detector, register_detector
from oe_core.errors import ConfigError, OEError

from .complexity import COMPRESSORS, complexity_bits_per_dim
from .config import KIND
from .typicality import BATCH_SIZES as TYPICALITY_BATCH_SIZES
from .typicality import entropy_estimate, typicality_scores
from .units import model_bits_per_dim


@register_detector("bpd", kind=KIND, units="bits per dim", paper_name="BPP", description="-log2 p(x) / (C H W)",
                   in_paper=True)
class BitsPerDim(Detector):
    """Bits per dimension ``-log2 p(x) / D``."""

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return model_bits_per_dim(self.model, x)


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
        return model_bits_per_dim(self.model, x) - model_bits_per_dim(self.background, x)


class ComplexityCorrected(Detector):
    """``bpd_model(x) - L(x)``, ``L`` the ``compressor``'s length of the 8-bit image in bits/dim."""

    def __init__(self, model, compressor: str = "png"):
        super().__init__(model)
        self.compressor = compressor

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        x8 = torch.round((x.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)  # exact for x = k/127.5 - 1
        return model_bits_per_dim(self.model, x).cpu() - complexity_bits_per_dim(x8, self.compressor)


for _name in COMPRESSORS:
    register_detector(f"complexity_{_name}", kind=KIND, units=f"bpd(model) - {_name.upper()} bits per dim",
                      paper_name=f"S ({_name.upper()})",
                      description=f"bits/dim minus the {_name} compressed length in bits/dim (Serra et al. 2020)",
                      options={"compressor": _name})(ComplexityCorrected)


class Typicality(Detector):
    """``Typicality(model, m=1)``: fit on in-distribution images (``(x, y)`` batches of model inputs), then
    ``predict(x)`` gives ``T_M`` in bits/dim for consecutive groups of ``m`` images of ``x``."""

    requires_fit = True

    def __init__(self, model, m: int = 1):
        super().__init__(model)
        if m < 1:
            raise ConfigError(f"typicality batch size M must be >= 1, got {m}")
        self.m = m
        self.entropy: float | None = None

    @torch.no_grad()
    def fit(self, loader, device=None) -> "Typicality":
        self.entropy = entropy_estimate(torch.cat([model_bits_per_dim(self.model, x).cpu() for x, _ in loader]))
        return self

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.entropy is None:
            raise OEError("Typicality.predict before fit: fit it on in-distribution (training) images first")
        return typicality_scores(model_bits_per_dim(self.model, x), self.entropy, self.m)


register_detector("typicality", kind=KIND, units="|bpd(x) - mean train bpd| (bits per dim)",
                  paper_name="Typicality (M=1)", needs_fit=True, options={"m": 1},
                  description="|bpd(x) - mean bpd of the in-distribution training images| (Nalisnick et al. 2019, "
                              "single-input form)")(Typicality)
for _m in TYPICALITY_BATCH_SIZES:
    register_detector(f"typicality_m{_m}", kind=KIND, paper_name=f"Typicality (M={_m})", needs_fit=True,
                      units=f"|mean bpd of {_m} inputs - mean train bpd| (bits per dim)", options={"m": _m},
                      description=f"typicality test on consecutive batches of {_m} inputs, every input scored with "
                                  "its batch's statistic (Nalisnick et al. 2019)")(Typicality)
