"""Exclusive ``flock`` locks: one trainer per run folder (``<out>/run.lock``, held for the whole run; a second one
stops at once with :class:`RunFolderBusy`, exit code 2), one reproduce run per ``--out`` (docs/runs.md).

The kernel releases a ``flock`` with the last descriptor of the open file, so the lock ends with the process on
every exit (kill -9 too) and a stale file never blocks.  The file stays behind holding the last holder's note; it is
never deleted (a third process could then lock a new file while the second still holds the old one).
"""
from __future__ import annotations

import errno
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import OEError

LOCK_NAME = "run.lock"


class RunFolderBusy(OEError):
    """Another live process holds the run folder's lock."""


def _read_note(path: Path, default: str) -> str:
    """The note the holder wrote into the lock file (it writes right after locking, so retry briefly)."""
    for _ in range(20):
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text:
            return text
        time.sleep(0.05)
    return default


@contextmanager
def flocked(path: str | Path, exclusive: bool = True) -> Iterator[bool]:
    """Tries a non-blocking ``flock`` on ``path`` (a file or a folder, opened read-only) and yields whether it was
    taken; the lock ends with the ``with`` block."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            taken = True
        except OSError:
            taken = False
        yield taken
    finally:
        os.close(fd)


def lock_holder(path: Path) -> Optional[str]:
    """The note of ``path``'s live holder, or ``None`` when no live process holds its lock."""
    if not path.exists():
        return None
    with flocked(path, exclusive=False) as free:
        return None if free else _read_note(path, "a process")


class FileLock:
    """``with FileLock(path, holder, busy):`` holds an exclusive, non-blocking ``flock`` on ``path``; ``holder`` is
    the note written into the file while it is held (``{pid}``: this process's pid), ``busy(note)`` the error a
    second process gets."""

    def __init__(self, path: str | Path, holder: str, busy: Callable[[str], OEError]):
        self.path = Path(path)
        self.holder, self.busy = holder, busy
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OEError(f"cannot create the lock file {str(self.path)!r} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OEError(f"cannot lock {str(self.path)!r} ({e.strerror or e})") from None
            raise self.busy(_read_note(self.path, "unknown")) from None
        self._fd = fd
        self.note()

    def note(self, text: str = "") -> None:
        """Rewrite the holder note as ``holder + text``."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{self.holder.format(pid=os.getpid())}{text}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class RunLock(FileLock):
    """``with RunLock(folder):`` holds the exclusive lock on ``folder/run.lock`` (the note: the holder's pid)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        super().__init__(self.folder / LOCK_NAME, "{pid}", lambda pid: RunFolderBusy(
            f"run folder {str(self.folder)!r} is in use by another trainer (pid {pid}, lock {LOCK_NAME}); wait "
            "for it to end, stop it, or use another --out"))
