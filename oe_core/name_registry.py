"""``Registry``: the generic name -> entry table with metadata (in the spirit of timm's model registry) that every
registry of the suite is an instance of (datasets, detectors, the packages' own)."""
from __future__ import annotations

import fnmatch
from typing import Generic, TypeVar

from .errors import OEError

E = TypeVar("E")


class Registry(Generic[E]):
    """Maps lower-case names to entries (usually frozen dataclasses)."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, E] = {}

    def add(self, name: str, entry: E) -> E:
        key = name.lower()
        if key in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[key] = entry
        return entry

    def get(self, name: str) -> E:
        key = str(name).lower()
        if key not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise OEError(f"unknown {self.what} {name!r}; known: {known}")
        return self._entries[key]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern.lower()))

    def __contains__(self, name: object) -> bool:
        return str(name).lower() in self._entries
