"""Build-once cache of the mini benchmark's arrays: one ``.npz`` per (set, split, size, seed, n, version).

The default folder is ``$OE_CACHE/mini`` when ``OE_CACHE`` is set, otherwise
``~/.cache/oe_suite/mini`` -- never inside the installed package.  Files are
written atomically (parallel builders, e.g. DDP ranks, at worst build twice).
A file that cannot be read, or whose stored key differs from the request, is
rebuilt and replaced.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from oe_core.atomic import atomic_write_bytes
from oe_core.errors import DataError


@dataclass(frozen=True)
class MiniArrays:
    """A built set: ``images`` uint8 ``(N, H, W, 3)``, ``targets`` int64 ``(N,)`` (-1 for OOD/outlier
    sets) and per-image construction metadata (``meta[key]`` has N rows)."""

    images: np.ndarray
    targets: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)


def default_cache_dir() -> Path:
    """``$OE_CACHE/mini``, or ``~/.cache/oe_suite/mini`` when ``OE_CACHE`` is unset."""
    env = os.environ.get("OE_CACHE")
    return Path(env).expanduser() / "mini" if env else Path.home() / ".cache" / "oe_suite" / "mini"


def cache_path(cache_dir: Path, key: dict) -> Path:
    """The file for ``key`` (dict with name, split, size, seed, n, version)."""
    return Path(cache_dir) / "{name}_{split}_size{size}_seed{seed}_n{n}_v{version}.npz".format(**key)


def _read(path: Path, key: dict) -> MiniArrays | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != key:
                return None
            meta = {k[len("meta_"):]: z[k] for k in z.files if k.startswith("meta_")}
            return MiniArrays(z["images"], z["targets"], meta)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def cached_build(key: dict, build: Callable[[], MiniArrays], cache_dir: Path) -> MiniArrays:
    """Load ``key``'s arrays from ``cache_dir``, or ``build()`` them and store them there."""
    path = cache_path(cache_dir, key)
    if path.is_file():
        hit = _read(path, key)
        if hit is not None:
            return hit
    arrays = build()
    buf = io.BytesIO()
    np.savez(buf, key=np.array(json.dumps(key, sort_keys=True)), images=arrays.images, targets=arrays.targets,
             **{f"meta_{k}": v for k, v in arrays.meta.items()})
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise DataError(f"mini benchmark: cannot write the cache file {str(path)!r} ({e}); "
                        f"pass cache_dir= or set $OE_CACHE to a writable folder") from e
    return arrays
