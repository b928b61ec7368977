"""Maximum logit (Hendrycks et al. 2022, "Scaling out-of-distribution detection")."""
from classifiers_oe.scores import max_logit_score

from .registry import register_detector


@register_detector("max_logit", kind="classifier", units="negative max logit", paper_name="MaxLogit",
                   description="-max_k z_k")
def max_logit(model, x, background=None):
    return max_logit_score(model.logits(x).double())
