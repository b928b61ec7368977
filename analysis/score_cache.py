"""Score cache: per-image scores per (model, detector, dataset), reused until the inputs change.

Layout: ``<root>/<model label>/<detector>/<dataset spec slug>.npz`` holding ``scores`` (float64 [N]) and
``meta`` (JSON): format version, model label and kind, checkpoint digest (sha256 of the weights; for the
likelihood ratio, model and background digests joined by ``+``), dataset spec and fingerprint (name, split,
options, image limit), detector, ``n``, creation time and library versions.

An entry is **stale** -- and recomputed -- when its digest or dataset fingerprint differs from the current
ones (retrained checkpoint, other options or limit) or when it was written by another format version.  An
entry is **damaged** when it cannot be read (truncated, zeroed, not a zip) or its scores do not match the
sha256 stored with them (``meta["sha256"]``); a damaged entry is set aside as ``<entry>.npz.damaged`` with a
one-line warning and recomputed (:meth:`ScoreCache.set_aside`; readers without the model find its
checkpoint through :func:`analysis.cached_scores.model_source`).  The cache directory doubles as the suite's *score file* format: scores computed
elsewhere can be saved with :meth:`ScoreCache.save` and evaluated with ``analysis.evaluate --cached``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from oe_core.errors import OEError, one_line
from oe_core.metrics import as_scores
from oe_core.atomic import atomic_write_bytes
from oe_core.run.checkpoint import library_versions

from .datasets import DatasetSpec

FORMAT = 1
_SAFE = re.compile(r"^[A-Za-z0-9_.\-+=]+$")


def _check_part(what: str, value: str) -> str:
    if not value or not _SAFE.match(value) or value in (".", ".."):
        raise OEError(f"{what} {value!r} cannot name a cache folder: use letters, digits and _.-+=")
    return value


class DamagedEntry(OEError):
    """A cache entry that cannot be read or fails its checksum; ``reason`` says how."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cached scores {str(path)!r} are damaged ({reason})")
        self.path, self.reason = path, reason


def scores_sha256(scores: np.ndarray) -> str:
    """The checksum stored with an entry: sha256 of the scores as little-endian float64."""
    return hashlib.sha256(np.ascontiguousarray(scores, dtype="<f8").tobytes()).hexdigest()


@dataclass(frozen=True)
class ScoreKey:
    """What a score array is of: model label, detector name and dataset (with the image limit)."""

    model: str
    detector: str
    dataset: DatasetSpec
    limit: int = 0

    @property
    def fingerprint(self) -> str:
        return self.dataset.fingerprint(self.limit)


@dataclass(frozen=True)
class ScoreEntry:
    scores: np.ndarray
    meta: dict


class ScoreCache:
    """Score files under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def path(self, key: ScoreKey) -> Path:
        return (self.root / _check_part("model label", key.model) / _check_part("detector", key.detector)
                / f"{key.dataset.slug}.npz")

    def read(self, key: ScoreKey) -> ScoreEntry:
        """The stored entry of ``key`` (no staleness check).

        Raises :class:`OEError` if there is none and :class:`DamagedEntry` if it cannot be read or its scores
        fail their checksum.
        """
        path = self.path(key)
        if not path.is_file():
            raise OEError(f"no cached scores for model {key.model!r}, detector {key.detector!r}, "
                          f"dataset {key.dataset.text!r} (looked for {str(path)!r})")
        return read_entry(path)

    def set_aside(self, key: ScoreKey, reason: str) -> Path:
        """Move the damaged entry of ``key`` to ``<entry>.npz.damaged`` (replacing an older one) and warn."""
        path = self.path(key)
        dest = path.with_name(path.name + ".damaged")
        os.replace(path, dest)
        warnings.warn(f"damaged score-cache entry {str(path)!r} ({reason}): set aside as {dest.name}, "
                      "recomputing", stacklevel=3)
        return dest

    def stale_reason(self, key: ScoreKey, digest: str) -> Optional[str]:
        """Why the entry of ``key`` cannot be reused with weights ``digest`` (``None``: it can)."""
        try:
            meta = self.read(key).meta
        except OEError as e:
            return str(e)
        return _stale(meta, key, digest)

    def save(self, key: ScoreKey, scores, digest: str, **extra) -> Path:
        """Write the scores of ``key`` (atomically) with metadata and checksum; ``extra`` adds metadata fields."""
        arr = as_scores(scores, f"scores of {key.model}/{key.detector}/{key.dataset.text}")
        meta = {"format": FORMAT, "model": key.model, "detector": key.detector, "dataset": key.dataset.to_dict(),
                "limit": key.limit, "fingerprint": key.fingerprint, "digest": digest, "n": int(arr.size),
                "sha256": scores_sha256(arr), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": library_versions(), **extra}
        buf = io.BytesIO()
        np.savez(buf, scores=arr, meta=np.array(json.dumps(meta, sort_keys=True)))
        path = self.path(key)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def get_or_compute(self, key: ScoreKey, digest: str, compute: Callable[[], np.ndarray],
                       **extra) -> tuple[np.ndarray, str]:
        """Cached scores of ``key`` if fresh, else ``compute()`` and store them.

        Returns ``(scores, status)`` with status ``"hit"``, ``"new"``, ``"stale: <reason>"`` or
        ``"damaged: <reason>"`` (the damaged entry is set aside first).
        """
        status = "new"
        if self.path(key).exists():
            try:
                entry = self.read(key)
            except DamagedEntry as e:
                self.set_aside(key, e.reason)
                status = f"damaged: {e.reason}"
            else:
                reason = _stale(entry.meta, key, digest)
                if reason is None:
                    return entry.scores, "hit"
                warnings.warn(f"recomputing {self.path(key)}: {reason}", stacklevel=2)
                status = f"stale: {reason}"
        scores = as_scores(compute(), f"computed scores of {key.model}/{key.detector}/{key.dataset.text}")
        self.save(key, scores, digest, **extra)
        return scores, status

    def models(self) -> list[str]:
        """Model labels with at least one entry."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.rglob("*.npz")))

    def entries(self, model: str) -> list[dict]:
        """Metadata of every readable entry of ``model`` (damaged ones are left to the readers that need them)."""
        out = []
        for path in sorted((self.root / _check_part("model label", model)).glob("*/*.npz")):
            try:
                out.append(read_entry(path).meta)
            except DamagedEntry:
                continue
        return out


def read_entry(path: Path) -> ScoreEntry:
    """Read and verify one entry file; :class:`DamagedEntry` says what is wrong with it."""
    try:
        head = path.read_bytes()[:4]
    except OSError as e:
        raise DamagedEntry(path, f"unreadable: {e.strerror or e}") from None
    if head != b"PK\x03\x04":
        what = "empty" if not head else "zeroed" if not any(head) else "not an .npz (zip) file"
        raise DamagedEntry(path, f"unreadable: {what}")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            raw = z["scores"]
    except Exception as e:  # BadZipFile, EOFError, zlib/CRC errors, ValueError, KeyError, OSError ...
        raise DamagedEntry(path, f"unreadable: {type(e).__name__}: {one_line(e, 120)}") from None
    if not isinstance(meta, dict):
        raise DamagedEntry(path, "unreadable: its metadata is not a JSON object")
    try:
        scores = as_scores(raw, f"scores in {path}")
    except OEError as e:
        raise DamagedEntry(path, f"unreadable: {e}") from None
    if len(scores) != meta.get("n"):
        raise DamagedEntry(path, f"holds {len(scores)} scores, its metadata says {meta.get('n')}")
    if "sha256" in meta and scores_sha256(scores) != meta["sha256"]:
        raise DamagedEntry(path, "the scores do not match their stored checksum")
    return ScoreEntry(scores, meta)


def _stale(meta: dict, key: ScoreKey, digest: str) -> Optional[str]:
    if meta.get("format") != FORMAT:
        return f"cache format {meta.get('format')} != {FORMAT}"
    if meta.get("digest") != digest:
        return f"checkpoint digest changed ({str(meta.get('digest'))[:12]} -> {digest[:12]})"
    if meta.get("fingerprint") != key.fingerprint:
        return f"dataset fingerprint changed ({meta.get('fingerprint')} -> {key.fingerprint})"
    return None
