"""Checkpoints: atomic, checksummed, typed, and loadable without running code (docs/runs.md).

File layout (format 2)::

    OE-SUITE-CHECKPOINT/2\\n
    {"sha256": <hex of blob>, "bytes": <len of blob>, "meta": {...}}\\n     one line of JSON
    <blob>                                                                   torch.save of the state

The state holds only what ``torch.load(weights_only=True)`` accepts (checked before writing), and loading checks
header, length and checksum before it unpacks the blob that way.  Format 1 (``torch.save`` of ``{"format", "sha256",
"meta", "blob"}``) loads the same way, with numpy's array constructor allowed for its RNG state.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch

from ..atomic import atomic_write_bytes
from ..errors import CheckpointError, CheckpointKindError, NonFiniteLossError, NotACheckpointError, UnsafeFileError
from ..errors import one_line
from .release import WEIGHTS, is_safetensors, safetensors_state

MAGIC = b"OE-SUITE-CHECKPOINT/2\n"
FORMAT_V1 = "oe-suite-checkpoint/1"
LATEST = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
NEXT = ".checkpoint.next.tmp"  # complete but not yet rotated in; removed at the start of a run
_MAX_HEADER = 1 << 20
_ZIP = b"PK\x03\x04"

# What a state may hold: what torch.load(weights_only=True) reads back.
_PLAIN = (str, int, float, bool, type(None), bytes, torch.Size, torch.dtype, torch.device)


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


def assert_plain(obj: Any, where: str = "state") -> None:
    """Raise ``TypeError`` naming the first value that ``torch.load(weights_only=True)`` could not read back."""
    if torch.is_tensor(obj) or isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint {where} has a key of type {type(k).__name__}")
            assert_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            assert_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint {where} is a {type(obj).__module__}.{type(obj).__name__}; store plain "
                    "containers, numbers, strings and tensors only")


def save_checkpoint(folder: str | Path, state: dict, *, kind: str, step: int, epoch: int) -> Path:
    """Write ``state`` to ``folder/checkpoint.pt``; the previous one becomes ``checkpoint.prev.pt``.  The files are
    rotated only once the new one is complete and fsynced, so a failing write leaves both untouched."""
    assert_plain(state)
    folder = Path(folder)
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    meta = {"kind": kind, "step": int(step), "epoch": int(epoch), "time": time.time(),
            "versions": library_versions()}
    header = json.dumps({"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob), "meta": meta})
    staged = folder / NEXT
    atomic_write_bytes(staged, MAGIC + header.encode() + b"\n" + blob)
    path = folder / LATEST
    if path.exists():
        os.replace(path, folder / PREVIOUS)
    os.replace(staged, path)
    return path


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({why})")


def _safe_load(data: bytes, path: Path, map_location: Any, extra_types: list = ()) -> Any:
    """``torch.load(weights_only=True)`` of ``data``; pickled objects raise :class:`UnsafeFileError`."""
    try:
        with torch.serialization.safe_globals(list(extra_types)):
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UnsafeFileError(f"{str(path)!r} holds pickled Python objects, which can run code when loaded; the "
                              "suite reads only tensors, numbers, strings and plain containers and refused it"
                              ) from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise _corrupt(path, f"{type(e).__name__}: {one_line(e, 160)}") from None


def _numpy_array_types() -> list:
    """The numpy globals a format-1 RNG state needs: the array constructor and the uint32 dtype."""
    import numpy as np
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _read_v2(path: Path, raw: bytes, map_location: Any) -> tuple[dict, dict]:
    end = raw.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise _corrupt(path, "no header line")
    try:
        header = json.loads(raw[len(MAGIC):end])
        sha, size, meta = header["sha256"], int(header["bytes"]), header["meta"]
    except (ValueError, KeyError, TypeError) as e:
        raise _corrupt(path, f"unreadable header: {type(e).__name__}") from None
    blob = raw[end + 1:]
    if len(blob) != size:
        raise _corrupt(path, f"{len(blob)} of {size} bytes")
    if hashlib.sha256(blob).hexdigest() != sha:
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum (corrupt file)")
    return _safe_load(blob, path, map_location), {"sha256": sha, "meta": meta}


def _read_v1(path: Path, raw: bytes, map_location: Any) -> tuple[dict, dict]:
    outer = _safe_load(raw, path, "cpu")
    if not isinstance(outer, dict) or outer.get("format") != FORMAT_V1:
        raise _not_a_checkpoint(path)
    blob = outer.get("blob")
    if not isinstance(blob, bytes) or hashlib.sha256(blob).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum (corrupt file)")
    state = _safe_load(blob, path, map_location, _numpy_array_types())
    return state, {"sha256": outer["sha256"], "meta": outer.get("meta", {})}


def _not_a_checkpoint(path: Path) -> NotACheckpointError:
    return NotACheckpointError(f"{str(path)!r} is not an OE-suite checkpoint (no suite header); to use weights "
                               "of the original code, convert them with the method package's importer (the "
                               "density trainer's port tool)")


def checkpoint_format(path: str | Path) -> Optional[int]:
    """2 or 1 when ``path`` carries a suite checkpoint's header, ``None`` otherwise. Reads no pickle."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head == MAGIC:
        return 2
    if head.startswith(_ZIP):
        # a torch zip: format 1 names itself in the archive's pickle (read as bytes, never unpickled)
        try:
            with zipfile.ZipFile(path) as z:
                pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                return 1 if pkl is not None and FORMAT_V1.encode() in z.read(pkl) else None
        except (zipfile.BadZipFile, OSError, EOFError):  # damaged: it may be one of ours; reading it says what
            return 1
    return None


def _read_file(path: Path, expect_kind: Optional[str] = None, map_location: Any = "cpu") -> dict:
    """Read and verify one checkpoint file. Raises :class:`CheckpointError` (or a subclass) naming the file."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if is_safetensors(path):  # a run's model.safetensors (tensors and a JSON header: nothing to unpickle)
        return safetensors_state(path, expect_kind)
    raw = path.read_bytes()
    if raw.startswith(MAGIC):
        state, header = _read_v2(path, raw, map_location)
    elif raw.startswith(_ZIP):
        state, header = _read_v1(path, raw, map_location)
    elif not raw:
        raise _corrupt(path, "empty file")
    else:
        raise _not_a_checkpoint(path)
    if not isinstance(state, dict):
        raise _corrupt(path, f"the state is a {type(state).__name__}")
    kind = state.get("kind")
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointKindError(f"checkpoint {str(path)!r} holds a {kind} model, but a {expect_kind} model "
                                  "is needed")
    state.update(meta=header["meta"], sha256=header["sha256"], path=str(path))
    return state


def load_checkpoint(path: str | Path, expect_kind: Optional[str] = None, map_location: Any = "cpu") -> dict:
    """Read and verify a checkpoint file, or the latest good one in a run folder: ``checkpoint.pt``, falling back
    (with a warning) to ``checkpoint.prev.pt`` when it is missing or corrupt, never over a wrong kind or pickled
    objects.  A ``model.safetensors`` (a file, or a folder holding no checkpoint but one) loads as a state with the
    same keys (its scoring weights as ``model``)."""
    path = Path(path)
    if not path.is_dir():
        return _read_file(path, expect_kind, map_location)
    if not has_checkpoint(path) and (path / WEIGHTS).is_file():   # a released folder: config, weights, card
        return _read_file(path / WEIGHTS, expect_kind, map_location)
    errors = []
    for name in (LATEST, PREVIOUS):
        try:
            return _read_file(path / name, expect_kind, map_location)
        except (CheckpointKindError, UnsafeFileError):
            raise
        except CheckpointError as e:
            errors.append(str(e))
            if (path / name).exists():
                warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
    raise CheckpointError(f"no usable checkpoint in {str(path)!r}: " + "; ".join(errors))


def has_checkpoint(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / LATEST).exists() or (folder / PREVIOUS).exists()
