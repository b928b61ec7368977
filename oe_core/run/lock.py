"""One trainer per run folder: an exclusive ``flock`` on ``<out>/run.lock`` held for the whole run.

A second trainer started on a busy folder (a SLURM requeue while the old job still runs, a second launch with
other options) stops at once with :class:`RunFolderBusy` -- one line naming the folder and the holder's pid, exit
code 2 through :func:`oe_core.errors.cli_main` -- instead of interleaving two runs' checkpoints.

The kernel releases a ``flock`` when the last descriptor of the open file goes away, so the lock ends with the
process on every exit (normal, error, SIGTERM, kill -9).  The file itself stays behind holding the last holder's
pid; a stale file from a dead process does not block, because only a live lock does.  The file is never deleted:
deleting it would let a third process lock a new file while the second still holds the old one.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from ..errors import OEError

LOCK_NAME = "run.lock"


class RunFolderBusy(OEError):
    """Another live process holds the run folder's lock."""


def _holder_pid(path: Path) -> str:
    """The pid the holder wrote into the lock file (it writes right after locking, so retry briefly)."""
    for _ in range(20):
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text:
            return text
        time.sleep(0.05)
    return "unknown"


class RunLock:
    """``with RunLock(folder):`` holds the exclusive lock on ``folder`` (created if needed)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OEError(f"cannot create the lock file {str(self.path)!r} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OEError(f"cannot lock {str(self.path)!r} ({e.strerror or e})") from None
            raise RunFolderBusy(f"run folder {str(self.folder)!r} is in use by another trainer (pid "
                                f"{_holder_pid(self.path)}, lock {LOCK_NAME}); wait for it to end, stop it, or use "
                                "another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
