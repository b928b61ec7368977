"""pytorch-ood's detectors on this suite's classifiers, registered by name (an optional dependency).

``pip install "pytorch-ood>=0.4,<0.5"`` (or ``pip install -e ".[ood]"``) makes these usable in
the evaluation's ``--detectors ...``; without it they are listed as not installed.

| name          | pytorch-ood class | built on                                      | fitted on the ID training set   |
|---------------|-------------------|-----------------------------------------------|---------------------------------|
| `mahalanobis` | `Mahalanobis`     | pooled penultimate features                   | class means, shared covariance  |
| `vim`         | `ViM`             | pooled features, the last linear layer, d=D/2 | principal subspace, alpha       |
| `knn`         | `KNN` (k = 50)    | pooled features, L2-normalised                | the training features           |
| `react`       | `ReAct`           | last feature maps, clipped, then the head     | clipping threshold (90th pct.)  |
| `odin`        | `ODIN`            | the model (T = 1000, eps = 0.0014)            | -                               |
| `entropy`     | `Entropy`         | the model's logits                            | -                               |

"Features" are the last feature maps averaged over space (WRN: after the final BN-ReLU; AllConv: after its
8x8 average pool), so ``model(x) == head(features(x))``.  ODIN's input step is divided by the CIFAR std
(``norm_std``), so ``eps`` is in the unnormalised [0, 1] scale as in the ODIN paper.  Deliberate difference from
the suite's own detectors: pytorch-ood computes in the model's dtype (float32), not float64.  ``d = D/2`` for ViM
and ``k = 50`` for KNN are the papers' CIFAR-scale choices (ViM used ``d`` of about half of ``D`` for large
``D``; KNN k = 50 for CIFAR-10).
"""
from __future__ import annotations

from importlib.util import find_spec
from typing import Callable

import torch
from torch import nn

from oe_core.data.transforms import CIFAR_STD
from oe_core.detectors import register_detector

from .config import KIND
from .models import feature_layers

from oe_core.errors import ConfigError

INSTALL = 'pip install "pytorch-ood>=0.4,<0.5" (or pip install -e ".[ood]")'


def _installed() -> bool:
    try:
        return find_spec("pytorch_ood") is not None
    except ValueError:  # sys.modules["pytorch_ood"] is None: import blocked
        return False


AVAILABLE = _installed()  # checked without importing it (pytorch-ood is imported when a detector is built)


def _pooled(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    maps, _ = feature_layers(net)
    return lambda x: maps(x).mean(dim=(2, 3))


def _detector_class(name: str):
    import pytorch_ood
    import pytorch_ood.detector as pood
    if not hasattr(pood, name):
        raise ConfigError(f"pytorch-ood {pytorch_ood.__version__} has no detector {name}; {INSTALL}")
    return getattr(pood, name)


def mahalanobis(model: nn.Module):
    return _detector_class("Mahalanobis")(_pooled(model))


def vim(model: nn.Module):
    _, head = feature_layers(model)
    return _detector_class("ViM")(_pooled(model), d=head.in_features // 2, w=head.weight, b=head.bias)


def knn(model: nn.Module):
    return _detector_class("KNN")(_pooled(model), k=50)


def react(model: nn.Module):
    maps, head = feature_layers(model)
    return _detector_class("ReAct")(backbone=maps, head=lambda m: head(m.mean(dim=(2, 3))))


def odin(model: nn.Module):
    return _detector_class("ODIN")(model, eps=0.0014, temperature=1000.0, norm_std=list(CIFAR_STD))


def entropy(model: nn.Module):
    return _detector_class("Entropy")(model)


_ENTRIES = [
    # name, factory, pytorch-ood class, paper name, description, needs_fit, needs_grad
    ("mahalanobis", mahalanobis, "Mahalanobis", "Mahalanobis",
     "half the squared Mahalanobis distance of the features to the closest class mean (Lee et al. 2018)", True, False),
    ("vim", vim, "ViM", "ViM", "virtual-logit matching: residual norm off the principal subspace (Wang et al. 2022)",
     True, False),
    ("knn", knn, "KNN", "KNN", "distance to the 50th nearest normalised training feature (Sun et al. 2022)",
     True, False),
    ("react", react, "ReAct", "ReAct", "energy of the logits after clipping activations (Sun et al. 2021)",
     True, False),
    ("odin", odin, "ODIN", "ODIN", "MSP at temperature 1000 after an input perturbation (Liang et al. 2018)",
     False, True),
    ("entropy", entropy, "Entropy", "Entropy", "entropy of the softmax", False, False),
]

for _name, _factory, _cls, _paper, _desc, _fit, _grad in _ENTRIES:
    register_detector(_name, kind=KIND, units=f"pytorch-ood {_cls} score", paper_name=_paper,
                      description=f"{_desc} [pytorch-ood {_cls}]", needs_fit=_fit, needs_grad=_grad,
                      source="pytorch-ood",
                      missing="" if AVAILABLE else f"needs pytorch-ood: {INSTALL}")(_factory)
