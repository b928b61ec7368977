"""Dataset plugins: modules of other packages that register datasets into the registry, found without ``oe_core``
naming them, the first time a dataset name is not found and whenever the datasets are listed (never at import):
the entry points of the group :data:`ENTRY_POINT_GROUP` (``[project.entry-points."oe_suite.datasets"]`` in the
plugin's ``pyproject.toml``: ``mysets = "mypackage.datasets"``), then the modules named in ``$OE_DATASET_MODULES``
(comma separated; for source trees that are not pip-installed).  A plugin that fails to import is one
:class:`ConfigError` naming it, where it was declared and why (raised again at every later look-up).
"""
from __future__ import annotations

import functools
import importlib
import os
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import ConfigError

ENTRY_POINT_GROUP = "oe_suite.datasets"
MODULES_ENV = "OE_DATASET_MODULES"


@dataclass(frozen=True)
class Plugin:
    """A module to import: its entry point name (or the module), where it was declared and how it is imported."""
    name: str
    module: str
    declared: str
    load: Callable[[], object]


@functools.lru_cache(maxsize=1)
def _entry_point_plugins() -> tuple[Plugin, ...]:
    """The group's entry points (read once: the installed distributions do not change while a process runs)."""
    from importlib.metadata import entry_points
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed distribution"
        out.append(Plugin(ep.name, ep.value, f"the entry point {ep.name!r} of group {ENTRY_POINT_GROUP!r} of {dist}",
                          ep.load))
    return tuple(out)


def env_modules() -> list[str]:
    """The modules ``$OE_DATASET_MODULES`` names, in order."""
    return [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]


def find_plugins() -> list[Plugin]:
    """Every declared plugin: the entry points first, then ``$OE_DATASET_MODULES``."""
    env = [Plugin(m, m, f"${MODULES_ENV}", functools.partial(importlib.import_module, m)) for m in env_modules()]
    return [*_entry_point_plugins(), *env]


_lock = threading.RLock()
_imported: dict[str, Optional[ConfigError]] = {}   # module -> None (imported or importing) or its import error


def load_plugins() -> list[str]:
    """Import every declared plugin not imported yet; returns the modules imported so far.  Raises the
    :class:`ConfigError` of a plugin that failed to import."""
    with _lock:
        for p in find_plugins():
            if p.module not in _imported:
                _imported[p.module] = None            # marked first: a plugin that looks a name up does not recurse
                try:
                    p.load()
                except Exception as e:
                    _imported[p.module] = ConfigError(
                        f"dataset plugin {p.name!r} (module {p.module!r}, from {p.declared}) failed to import: "
                        f"{type(e).__name__}: {e}")
            if _imported[p.module] is not None:
                raise _imported[p.module]
        return [m for m, err in _imported.items() if err is None]


def where_plugins_come_from() -> str:
    """One sentence for the unknown-name error: where more datasets come from and which plugins were found."""
    found = ", ".join(f"{p.name} ({p.module})" for p in _entry_point_plugins()) or "none"
    env = os.environ.get(MODULES_ENV, "")
    return (f"other packages add datasets as plugins: entry points of group {ENTRY_POINT_GROUP!r} of installed "
            f"packages (found: {found}) and the modules named in ${MODULES_ENV} (comma separated; now "
            f"{repr(env) if env else 'unset'})")
