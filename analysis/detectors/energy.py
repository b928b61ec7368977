"""Free energy (Liu et al. 2020) at temperature 1."""
from classifiers_oe.scores import energy_score

from .registry import register_detector


@register_detector("energy", kind="classifier", units="free energy -logsumexp(z)", paper_name="Energy",
                   description="-T logsumexp(z / T), T = 1")
def energy(model, x, background=None):
    return energy_score(model.logits(x).double(), T=1.0)
