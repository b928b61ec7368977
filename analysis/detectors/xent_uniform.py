"""Cross-entropy to the uniform distribution: the reference's ``--use_xent`` score (OE paper, App. E)."""
from classifiers_oe.scores import xent_uniform_score

from .registry import register_detector


@register_detector("xent_uniform", kind="classifier", units="-H(U; softmax) (nats)", paper_name="H(U; p)",
                   description="mean_k(z) - logsumexp(z) = -H(U; softmax(z))")
def xent_uniform(model, x, background=None):
    return xent_uniform_score(model.logits(x).double())
