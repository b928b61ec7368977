"""Likelihood ratio against a background model (Ren et al. 2019).

Ren et al.'s LLR(x) = log p_model(x) - log p_background(x) is high for in-distribution inputs; the score is its
negation in bits per dimension, ``bpd_model(x) - bpd_background(x)``.  The background model is a density model
trained on inputs perturbed by :func:`analysis.perturb.mutate`, so it captures the population-level
"complexity" part of the likelihood and the ratio keeps the semantic part.
"""
from density_oe.dmol import bits_per_dim

from .registry import register_detector


@register_detector("likelihood_ratio", kind="density", units="bpd(model) - bpd(background) (bits per dim)",
                   paper_name="LLR", description="-(log p(x) - log p_background(x)) / (C H W ln 2)",
                   needs_background=True)
def likelihood_ratio(model, x, background):
    dims = x[0].numel()
    return bits_per_dim(model.log_prob(x).double(), dims) - bits_per_dim(background.log_prob(x).double(), dims)
