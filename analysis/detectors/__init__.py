"""OOD detectors, one per file, in one registry (:data:`DETECTORS`).

Classifier scores: ``msp`` (the paper's), ``max_logit``, ``energy``, ``xent_uniform``.  Density scores:
``bpd`` (the paper's), ``likelihood_ratio`` (needs a background model), ``complexity_png``,
``complexity_zlib``.  All are oriented higher = more anomalous.
"""
from . import bpd, complexity, energy, likelihood_ratio, max_logit, msp, xent_uniform  # noqa: F401  (registration)
from .registry import DETECTORS, KINDS, Detector, detectors_for, get_detector, register_detector

__all__ = ["DETECTORS", "KINDS", "Detector", "detectors_for", "get_detector", "register_detector"]
