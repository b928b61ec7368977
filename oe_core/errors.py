"""User-facing errors (:class:`OEError` and its subclasses: every problem caused by the user's input) and
:func:`cli_main`, which turns them into one line on stderr with the exit codes below.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Callable, Sequence

EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpoint written after SIGTERM/SIGINT; rerun to resume.
EXIT_NONFINITE = 3   # the loss became NaN/inf; nothing non-finite was saved.
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (e.g. ``| head``).
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C outside a training loop.


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(message: object, limit: int = 300) -> str:
    """The first non-empty line of ``message`` without terminal colour codes, cut at ``limit`` characters
    (third-party errors, e.g. torch.load's, can span many lines)."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(message)).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


class OEError(Exception):
    """An error in the user's input or environment, reported as one line."""


class DataError(OEError):
    """A dataset is missing, incomplete or corrupt."""


class ConfigError(OEError):
    """A configuration value is invalid."""


class CheckpointError(OEError):
    """A checkpoint is missing, corrupt or of the wrong kind/shape."""


class CheckpointKindError(CheckpointError):
    """A checkpoint holds a model of another kind than the one asked for."""


class NotACheckpointError(CheckpointError):
    """A file carries no suite checkpoint header (it may be a plain state dict of the original code)."""


class UnsafeFileError(CheckpointError):
    """A file holds pickled Python objects, which could run code if loaded; the suite refuses it."""


class NonFiniteLossError(OEError):
    """The training loss became NaN or infinite."""


class Preempted(Exception):
    """SIGTERM/SIGINT arrived; the current step finished and a checkpoint was written."""

    def __init__(self, checkpoint: str):
        super().__init__(f"preempted: checkpoint written to {checkpoint}; rerun the same command to resume")
        self.checkpoint = checkpoint


def cli_main(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; an :class:`OEError` becomes ``error: <message>`` on stderr and exit code 2 (no traceback
    unless ``--debug`` is in ``argv``), a closed output pipe exit code 141, Ctrl-C 130, each with one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    shown = warnings.formatwarning
    if not debug:  # warnings as one line each ("warning: ..."), not file:line plus the source line
        warnings.formatwarning = _one_line_warning
    try:
        rc = main(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
    except Preempted as e:
        print(str(e), file=sys.stderr)
        return EXIT_PREEMPTED
    except (OEError, BrokenPipeError, KeyboardInterrupt) as e:
        if debug:
            raise
        if isinstance(e, BrokenPipeError):
            _silence_stdout()
            line, code = "stopped: the output pipe was closed", EXIT_BROKEN_PIPE
        elif isinstance(e, KeyboardInterrupt):
            line, code = "interrupted (Ctrl-C)", EXIT_INTERRUPTED
        else:
            line, code = f"error: {e}", EXIT_NONFINITE if isinstance(e, NonFiniteLossError) else EXIT_USER_ERROR
        print(line, file=sys.stderr)
        return code
    finally:
        warnings.formatwarning = shown
    return int(rc or 0)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {one_line(message, 1000)}\n"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise BrokenPipeError again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stdout (pytest capture, StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
