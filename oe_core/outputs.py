"""Output checks: every tool that writes files makes sure, before any model or data work, that it can write
where it was told to (one clear error line, exit 2, instead of a traceback after the work is done)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import ConfigError


def check_writable_folder(folder: str | Path, option: str = "--out") -> Path:
    """Create ``folder`` (and parents) and make sure a file can be written there; :class:`ConfigError` if not."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(f"{option} {str(folder)!r} is not writable ({e.strerror or e})") from None
    return folder


def check_writable_file(path: str | Path, option: str = "--out") -> Path:
    """Make sure ``path`` can be written (its folder is created and writable; it is not a folder itself)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder, not a file")
    check_writable_folder(path.parent, option)
    return path
