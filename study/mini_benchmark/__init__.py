"""The offline mini benchmark: CIFAR-like in-distribution, OE outliers and OOD test sets made only from pictures
that ship inside installed packages or with this package (no download, seconds to build).

Importing this package registers its sets into ``oe_core``'s dataset registry: version 2 (:mod:`.v2`: ``mini-id``,
``mini-outliers``, ``mini-val-outliers``, ``mini-textures``, ``mini-faces``, ``mini-svhn``,
``mini-svhn-saturated``), version 3 (:mod:`.v3`: ``mini3-id``), version 4 (:mod:`.v4`: ``mini4-id``) and the
toy set of tests and quick demos (:mod:`.toy_shapes`: ``toy-shapes``).  ``oe_core.data`` finds it as a dataset plugin
(the entry point ``mini`` of the group ``oe_suite.datasets`` in ``pyproject.toml``, or ``$OE_DATASET_MODULES``
in an uninstalled source tree), so ``python -m classifiers_oe.train --dataset mini-id`` works without importing
``study``.  Which sets form each version: :mod:`.versions`.  Design and rationale: ``docs/mini_benchmark.md``.
"""
from . import toy_shapes, v2, v3, v4  # noqa: F401  (registration)
from .cache import MiniArrays
from .sets import build_mini
from .versions import BENCHMARKS, DEFAULT_BENCHMARK, MiniBenchmark, get_benchmark

__all__ = ["BENCHMARKS", "DEFAULT_BENCHMARK", "MiniArrays", "MiniBenchmark", "build_mini", "get_benchmark"]
