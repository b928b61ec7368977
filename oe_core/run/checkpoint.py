"""Checkpoints: atomic, checksummed, typed, with the previous one kept as a fallback.

File layout (``torch.save`` of a small dict)::

    {"format": "oe-suite-checkpoint/1", "sha256": <hex of blob>, "meta": {...}, "blob": <bytes>}

``blob`` is ``torch.save`` of the full state (kind, config, model, optimizer, scheduler, task state, position,
RNG states, history).  The checksum detects truncated or corrupt files; ``meta`` (kind, step, epoch, library
versions, time) can be read without unpacking the state.  Saving writes the new file completely before moving the
previous one to ``checkpoint.prev.pt``; loading falls back to the previous file when the latest one
is corrupt.
"""
from __future__ import annotations

import hashlib
import io

import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import CheckpointError, NonFiniteLossError
from ..atomic import atomic_write_bytes

FORMAT = "oe-suite-checkpoint/1"
LATEST = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
NEXT = ".checkpoint.next.tmp"  # complete but not yet rotated in; removed at the start of a run


def library_versions() -> dict:
    import numpy

    from .. import __version__
    return {"oe_suite": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def assert_finite_state(state_dict: dict, what: str = "model") -> None:
    """Refuse to write NaN/inf weights."""
    for k, v in state_dict.items():
        if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all():
            raise NonFiniteLossError(f"{what} weight {k!r} is not finite; refusing to write the checkpoint")


def save_checkpoint(folder: str | Path, state: dict, *, kind: str, step: int, epoch: int) -> Path:
    """Write ``state`` to ``folder/checkpoint.pt``; the previous one becomes ``checkpoint.prev.pt``.

    The new file is written completely (and fsynced) under a temporary name first, and only then are the files
    rotated, so a failing write (full disk, kill) leaves both existing checkpoints untouched.
    """
    folder = Path(folder)
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    meta = {"kind": kind, "step": int(step), "epoch": int(epoch), "time": time.time(),
            "versions": library_versions(), "bytes": len(blob)}
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(blob).hexdigest(), "meta": meta, "blob": blob}, outer)
    staged = folder / NEXT
    atomic_write_bytes(staged, outer.getvalue())
    path = folder / LATEST
    if path.exists():
        os.replace(path, folder / PREVIOUS)
    os.replace(staged, path)
    return path


def read_checkpoint(path: str | Path, expect_kind: Optional[str] = None, map_location: Any = "cpu") -> dict:
    """Read and verify one checkpoint file.  Raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        outer = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}: {e})") from None
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an OE-suite checkpoint (no {FORMAT!r} header); "
                              "to use weights of the original code, use the importers (e.g. density_oe.port)")
    blob = outer["blob"]
    if hashlib.sha256(blob).hexdigest() != outer["sha256"]:
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum (corrupt file)")
    state = torch.load(io.BytesIO(blob), map_location=map_location, weights_only=False)
    kind = state.get("kind")
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {kind} model, but a {expect_kind} model is needed")
    state["meta"] = outer["meta"]
    state["sha256"] = outer["sha256"]
    state["path"] = str(path)
    return state


def checkpoint_digest(path: str | Path) -> str:
    """The checksum stored in the checkpoint header (identifies the exact weights)."""
    return read_checkpoint(path)["sha256"]


def load_checkpoint(path: str | Path, expect_kind: Optional[str] = None, map_location: Any = "cpu") -> dict:
    """Load a checkpoint file, or the latest good one in a run folder.

    Given a folder, tries ``checkpoint.pt`` and falls back (with a warning) to ``checkpoint.prev.pt`` when
    the latest is missing or corrupt.  A wrong ``kind`` is never papered over.
    """
    path = Path(path)
    if not path.is_dir():
        return read_checkpoint(path, expect_kind, map_location)
    errors = []
    for name in (LATEST, PREVIOUS):
        try:
            return read_checkpoint(path / name, expect_kind, map_location)
        except CheckpointError as e:
            if (path / name).exists() and "holds a" in str(e):
                raise
            errors.append(str(e))
            if (path / name).exists():
                warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
    raise CheckpointError(f"no usable checkpoint in {str(path)!r}: " + "; ".join(errors))


def has_checkpoint(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / LATEST).exists() or (folder / PREVIOUS).exists()


