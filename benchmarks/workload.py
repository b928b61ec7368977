"""What a benchmark case is: a builder that returns the callables of one unit of work done two ways: ``fast`` (this
suite) and ``base`` (the baseline: the pclucas14 port for PixelCNN++, the OE reference's loop for the WRN)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from oe_core.data.transforms import to_unit_range
from oe_core.name_registry import Registry
from oe_core.run import autocast

from .port import Port
from .sizes import Sizes

FAST, BASE = "fast", "base"


@dataclass(frozen=True)
class BenchContext:
    """What case builders see: device, precision, sizes and options."""

    device: torch.device
    amp: str
    sizes: Sizes
    channels_last: bool = False
    seed: int = 0
    compile: bool = False
    port: Optional[Port] = None
    cuda_graphs: bool = False

    def require_port(self) -> Port:
        """The loaded pclucas14 port (the run loads it before any case that needs it)."""
        if self.port is None:
            raise RuntimeError("this benchmark case needs the pclucas14 port; BenchContext.port is not set")
        return self.port

    def autocast(self):
        return autocast(self.device, self.amp)

    @property
    def memory_format(self) -> torch.memory_format:
        """The fast variants' memory format (``--channels-last``); plain variants always use the default."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def generator(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + stream)

    def uint8_images(self, n: int, stream: int = 0) -> torch.Tensor:
        """``n`` random 8-bit images ``(n, 3, S, S)``, uint8, on the CPU (as a dataset yields them)."""
        s = self.sizes.image
        return torch.randint(0, 256, (n, 3, s, s), generator=self.generator(stream), dtype=torch.uint8)

    def images(self, n: int, stream: int = 0) -> torch.Tensor:
        """:meth:`uint8_images` scaled to [-1, 1] (the PixelCNN++ input range), on the device."""
        return to_unit_range(self.uint8_images(n, stream).to(self.device))


@dataclass
class Workload:
    """One unit of work (a training step, a scoring batch, ...) done two ways; ``baseline`` names the ``base`` way.

    ``variants[name]()`` builds that variant (its model, optimizer, ...) and returns a callable that does the work
    once; ``images`` is the number of images one call processes.  Inputs shared by both variants are built by the
    case itself, before the variants.
    """

    images: int
    variants: dict[str, Callable[[], Callable[[], object]]]
    detail: str
    baseline: str


@dataclass(frozen=True)
class CaseSpec:
    name: str
    title: str
    order: int
    build: Callable[[BenchContext], Workload]
    needs_port: bool


CASES: Registry[CaseSpec] = Registry("benchmark case")


def register_case(name: str, title: str, order: int, needs_port: bool = True) -> Callable:
    """Decorator: register ``build(ctx) -> Workload`` as case ``name``; ``order`` sets its place in the report;
    ``needs_port``: its baseline runs the pclucas14 port."""

    def wrap(build: Callable[[BenchContext], Workload]) -> Callable[[BenchContext], Workload]:
        CASES.add(name, CaseSpec(name, title, order, build, needs_port))
        return build

    return wrap


def ordered(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: CASES.get(n).order)
