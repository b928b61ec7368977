"""User-facing errors and the CLI wrapper that turns them into one clear line.

Every problem caused by the user's input (missing data, unknown names, bad
config values, a checkpoint of the wrong kind, ...) raises :class:`OEError`
(or a subclass).  CLI entry points run through :func:`cli_main`, which prints
``error: <message>`` on stderr and exits with code 2 -- no traceback unless
``--debug`` is given.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpoint written after SIGTERM/SIGINT; rerun to resume.
EXIT_NONFINITE = 3   # the loss became NaN/inf; nothing non-finite was saved.


class OEError(Exception):
    """An error in the user's input or environment, reported as one line."""


class DataError(OEError):
    """A dataset is missing, incomplete or corrupt."""


class ConfigError(OEError):
    """A configuration value is invalid."""


class CheckpointError(OEError):
    """A checkpoint is missing, corrupt or of the wrong kind/shape."""


class NonFiniteLossError(OEError):
    """The training loss became NaN or infinite."""


class Preempted(Exception):
    """SIGTERM/SIGINT arrived; the current step finished and a checkpoint was written."""

    def __init__(self, checkpoint: str):
        super().__init__(f"preempted: checkpoint written to {checkpoint}; rerun the same command to resume")
        self.checkpoint = checkpoint


def cli_main(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; turn :class:`OEError` into ``error: ...`` and exit code 2.

    ``--debug`` anywhere in ``argv`` re-raises so the full traceback shows.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rc = main(args)
    except Preempted as e:
        print(str(e), file=sys.stderr)
        return EXIT_PREEMPTED
    except NonFiniteLossError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NONFINITE
    except OEError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    return int(rc or 0)
