"""The classifier detectors: MSP, max logit, energy and cross-entropy to uniform, as objects in the registry.

``MSP(model).predict(x)`` runs ``model`` (any ``nn.Module`` giving logits [B, K] for its inputs ``x``) and scores
the logits; ``predict_features(logits)`` scores logits the caller already has.  Every score is computed from the
logits cast to float64.  The reference takes the softmax in float32, where the MSP of confident images rounds to
exactly 1.0 and those images tie.  The formulas are :mod:`classifiers_oe.logits`.
"""
from __future__ import annotations

import torch

from oe_core.detectors import Detector, register_detector

from .config import KIND
from .logits import energy_score, max_logit_score, msp_score, xent_uniform_score


class LogitDetector(Detector):
    """A score of the logits: ``predict(x) = predict_features(model(x))``."""

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict_features(self.model(x))

    def predict_features(self, logits: torch.Tensor) -> torch.Tensor:
        return self.score(logits.double())

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_detector("msp", kind=KIND, units="negative max softmax probability", paper_name="MSP",
                   description="-max_k softmax(z)_k (Hendrycks & Gimpel 2017; the OE paper's score)", in_paper=True)
class MSP(LogitDetector):
    """Maximum softmax probability, negated: ``-max_k softmax(z)_k``."""

    score = staticmethod(msp_score)


@register_detector("max_logit", kind=KIND, units="negative max logit", paper_name="MaxLogit",
                   description="-max_k z_k (Hendrycks et al. 2022)")
class MaxLogit(LogitDetector):
    """Maximum logit, negated: ``-max_k z_k``."""

    score = staticmethod(max_logit_score)


@register_detector("energy", kind=KIND, units="free energy -logsumexp(z)", paper_name="Energy",
                   description="-T logsumexp(z / T), T = 1 (Liu et al. 2020)")
class Energy(LogitDetector):
    """Free energy ``-T logsumexp(z / T)``."""

    def __init__(self, model, temperature: float = 1.0):
        super().__init__(model)
        self.temperature = temperature

    def predict_features(self, logits: torch.Tensor) -> torch.Tensor:
        return energy_score(logits.double(), T=self.temperature)


@register_detector("xent_uniform", kind=KIND, units="-H(U; softmax) (nats)", paper_name="H(U; p)",
                   description="mean_k(z) - logsumexp(z) = -H(U; softmax(z)) (the OE reference's --use_xent)")
class XentUniform(LogitDetector):
    """Cross-entropy to the uniform distribution, negated: ``mean_k(z) - logsumexp(z)``."""

    score = staticmethod(xent_uniform_score)
