"""The data root's lock file, ``oe-data.lock``: what ``python -m oe_core.data fetch`` downloaded and placed.

One JSON file under the data root, written atomically::

    {"format": "oe-data-lock/1",
     "files":   {"<published file name>": {"url", "sha256", "bytes", "pinned"}},
     "targets": {"<path under the root>": {"dataset", "source", "sha256", "files", "bytes"}}}

``files``: the sha256 of every downloaded file (where the source publishes no hash, every later fetch must match
it).  ``targets``: a digest of what was placed (:func:`tree_digest`), so ``--check`` finds a set that changed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ..atomic import atomic_write_text, file_sha256
from ..errors import DataError

LOCK_FILE = "oe-data.lock"
FORMAT = "oe-data-lock/1"


def tree_digest(path: Path) -> dict:
    """``{"sha256", "files", "bytes"}`` of a file, or of a folder (every file under it, by relative path)."""
    path = Path(path)
    if path.is_file():
        return {"sha256": file_sha256(path), "files": 1, "bytes": path.stat().st_size}
    h, count, size = hashlib.sha256(), 0, 0
    for p in sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()):
        h.update(f"{p.relative_to(path).as_posix()}\t{file_sha256(p)}\n".encode())
        count += 1
        size += p.stat().st_size
    return {"sha256": h.hexdigest(), "files": count, "bytes": size}


class DataLock:
    """The lock file of one data root (read at construction; :meth:`record` writes it back atomically)."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self.data = {"format": FORMAT, "files": {}, "targets": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                assert data.get("format") == FORMAT and isinstance(data.get("files"), dict)
                assert isinstance(data.get("targets"), dict)
            except (OSError, ValueError, AssertionError, AttributeError):
                raise DataError(f"the data lock file {str(self.path)!r} is unreadable or not an {FORMAT} file; "
                                "move it away to record the hashes anew") from None
            self.data = data

    def file(self, filename: str) -> Optional[dict]:
        return self.data["files"].get(filename)

    def target(self, target: str) -> Optional[dict]:
        return self.data["targets"].get(target)

    def targets_of(self, dataset: str) -> dict[str, dict]:
        return {t: rec for t, rec in self.data["targets"].items() if rec.get("dataset") == dataset}

    def datasets(self) -> list[str]:
        return sorted({rec["dataset"] for rec in self.data["targets"].values()})

    def record(self, filename: str, file_record: dict, target: str, target_record: dict) -> None:
        self.data["files"][filename] = file_record
        self.data["targets"][target] = target_record
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")


def verify_target(root: Path, target: str, record: dict) -> str:
    """'' when ``root/target`` still matches its record, else what differs."""
    path = Path(root) / target
    if not path.exists():
        return "missing"
    now = tree_digest(path)
    if now["sha256"] != record["sha256"]:
        return (f"changed since it was fetched ({now['files']} files, {now['bytes']} bytes now; "
                f"{record['files']} files, {record['bytes']} bytes recorded)")
    return ""
