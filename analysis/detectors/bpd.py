"""Bits per dimension of a density model: the OE paper's likelihood score (BPP in its Table 5)."""
from density_oe.dmol import bits_per_dim

from .registry import register_detector


@register_detector("bpd", kind="density", units="bits per dim", paper_name="BPP",
                   description="-log2 p(x) / (C H W)", in_paper=True)
def bpd(model, x, background=None):
    return bits_per_dim(model.log_prob(x).double(), x[0].numel())
