"""The versions of the mini benchmark: which registered sets play which role in each.

``get_benchmark("v3")`` -> :class:`MiniBenchmark`; ``python -m study.mini --benchmark`` and
``python -m study.mini.select --benchmark`` pick one.  Version 2 (:data:`DEFAULT_BENCHMARK`) is the demo's default;
versions 3 and 4 hold whole photographs out of training (``docs/mini_benchmark.md``).
"""
from __future__ import annotations

from dataclasses import dataclass

from oe_core.errors import ConfigError

_OOD = ("mini-svhn", "mini-svhn-saturated", "mini-textures", "mini-faces", "gaussian", "rademacher", "blobs")


@dataclass(frozen=True)
class MiniBenchmark:
    """One version: the in-distribution set (train/val/test), the OE set, the validation OOD set (choices
    only) and the test OOD sets, all registered dataset names."""

    name: str
    id_set: str
    outliers: str
    val_outliers: str
    ood_sets: tuple[str, ...]
    summary: str   # one sentence on the in-distribution set, for reports


BENCHMARKS: dict[str, MiniBenchmark] = {
    "v2": MiniBenchmark("v2", "mini-id", "mini-outliers", "mini-val-outliers", _OOD,
                        "in-distribution `mini-id` = colour photo thumbnails, one class per source photo, train "
                        "and test being independent random crops of it"),
    "v3": MiniBenchmark("v3", "mini3-id", "mini-outliers", "mini-val-outliers", _OOD,
                        "in-distribution `mini3-id` = crops of 43 freely licensed photographs in 3 scene classes "
                        "(plants, landscapes, objects), each photograph in exactly one of train / val / test, so "
                        "the test images come from photographs never trained on"),
    "v4": MiniBenchmark("v4", "mini4-id", "mini-outliers", "mini-val-outliers", _OOD,
                        "in-distribution `mini4-id` = crops of 323 freely licensed photographs in 8 classes "
                        "(animals, buildings, energy, landscapes, objects, plants, tools, underwater), each "
                        "photograph in exactly one of train / val / test"),
}
DEFAULT_BENCHMARK = "v2"


def get_benchmark(name: str) -> MiniBenchmark:
    """The mini benchmark version ``name`` (``v2``, ``v3``, ``v4``)."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown mini benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
