"""Maximum softmax probability (Hendrycks & Gimpel 2017): the OE paper's classifier score."""
from classifiers_oe.scores import msp_score

from .registry import register_detector


@register_detector("msp", kind="classifier", units="negative max softmax probability", paper_name="MSP",
                   description="-max_k softmax(z)_k", in_paper=True)
def msp(model, x, background=None):
    return msp_score(model.logits(x).double())
