"""Score cache: per-image scores per (model, detector, dataset), reused until the inputs change.

Layout: ``<root>/<model label>/<detector>/<dataset spec slug>.npz`` holding ``scores`` (float64 [N]) and
``meta`` (JSON): format version, model label and kind, checkpoint digest (sha256 of the weights; for the
likelihood ratio, model and background digests joined by ``+``), dataset spec and fingerprint (name, split,
options, image limit), detector, ``n``, creation time and library versions.

An entry is **stale** -- and recomputed -- when its digest or dataset fingerprint differs from the current
ones (retrained checkpoint, other options or limit), when it was written by another format version, or when
it cannot be read.  The cache directory doubles as the suite's *score file* format: scores computed
elsewhere can be saved with :meth:`ScoreCache.save` and evaluated with ``analysis.evaluate --cached``.
"""
from __future__ import annotations

import io
import json
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from oe_core.errors import OEError
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
        """The stored entry of ``key`` (no staleness check); :class:`OEError` if missing or unreadable."""
        path = self.path(key)
        if not path.is_file():
            raise OEError(f"no cached scores for model {key.model!r}, detector {key.detector!r}, "
                          f"dataset {key.dataset.text!r} (looked for {str(path)!r})")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                scores = as_scores(z["scores"], f"scores in {path}")
        except (OSError, ValueError, KeyError, OEError) as e:
            raise OEError(f"cached scores {str(path)!r} are unreadable ({e})") from None
        if len(scores) != meta.get("n"):
            raise OEError(f"cached scores {str(path)!r} hold {len(scores)} scores, metadata says {meta.get('n')}")
        return ScoreEntry(scores, meta)

    def stale_reason(self, key: ScoreKey, digest: str) -> Optional[str]:
        """Why the entry of ``key`` cannot be reused with weights ``digest`` (``None``: it can)."""
        try:
            meta = self.read(key).meta
        except OEError as e:
            return str(e)
        if meta.get("format") != FORMAT:
            return f"cache format {meta.get('format')} != {FORMAT}"
        if meta.get("digest") != digest:
            return f"checkpoint digest changed ({str(meta.get('digest'))[:12]} -> {digest[:12]})"
        if meta.get("fingerprint") != key.fingerprint:
            return f"dataset fingerprint changed ({meta.get('fingerprint')} -> {key.fingerprint})"
        return None

    def save(self, key: ScoreKey, scores, digest: str, **extra) -> Path:
        """Write the scores of ``key`` (atomically) with metadata; ``extra`` adds metadata fields."""
        arr = as_scores(scores, f"scores of {key.model}/{key.detector}/{key.dataset.text}")
        meta = {"format": FORMAT, "model": key.model, "detector": key.detector, "dataset": key.dataset.to_dict(),
                "limit": key.limit, "fingerprint": key.fingerprint, "digest": digest, "n": int(arr.size),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": library_versions(), **extra}
        buf = io.BytesIO()
        np.savez(buf, scores=arr, meta=np.array(json.dumps(meta, sort_keys=True)))
        path = self.path(key)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def get_or_compute(self, key: ScoreKey, digest: str, compute: Callable[[], np.ndarray],
                       **extra) -> tuple[np.ndarray, str]:
        """Cached scores of ``key`` if fresh, else ``compute()`` and store them.

        Returns ``(scores, status)`` with status ``"hit"``, ``"new"`` or ``"stale: <reason>"``.
        """
        exists = self.path(key).exists()
        reason = self.stale_reason(key, digest) if exists else None
        if exists and reason is None:
            return self.read(key).scores, "hit"
        if reason is not None:
            warnings.warn(f"recomputing {self.path(key)}: {reason}", stacklevel=2)
        scores = as_scores(compute(), f"computed scores of {key.model}/{key.detector}/{key.dataset.text}")
        self.save(key, scores, digest, **extra)
        return scores, "new" if reason is None else f"stale: {reason}"

    def models(self) -> list[str]:
        """Model labels with at least one entry."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.rglob("*.npz")))

    def entries(self, model: str) -> list[dict]:
        """Metadata of every readable entry of ``model``."""
        out = []
        for path in sorted((self.root / _check_part("model label", model)).glob("*/*.npz")):
            try:
                with np.load(path, allow_pickle=False) as z:
                    out.append(json.loads(str(z["meta"])))
            except (OSError, ValueError, KeyError):
                warnings.warn(f"skipping unreadable cache file {path}", stacklevel=2)
        return out
