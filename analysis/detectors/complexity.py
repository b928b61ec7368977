"""Input-complexity-corrected likelihood (Serra et al. 2020): ``S(x) = bpd_model(x) - L(x)``.

``L(x)`` is the compressed length of the uint8 image in bits per dimension (:mod:`analysis.compression`); an
image that is likely only because it is simple (low ``L``) is no longer scored as in-distribution.  One
detector per compressor: ``complexity_png`` and ``complexity_zlib``.
"""
from functools import partial

from density_oe.dmol import bits_per_dim

from ..compression import COMPRESSORS, complexity_bits_per_dim
from .registry import register_detector


def complexity_corrected(model, x, background=None, *, compressor: str):
    bpd = bits_per_dim(model.log_prob(x).double(), x[0].numel()).cpu()
    return bpd - complexity_bits_per_dim(x, compressor)


for _name in COMPRESSORS:
    register_detector(f"complexity_{_name}", kind="density",
                      units=f"bpd(model) - {_name.upper()} bits per dim", paper_name=f"S ({_name.upper()})",
                      description=f"bits/dim minus the {_name} compressed length in bits/dim")(
        partial(complexity_corrected, compressor=_name))
