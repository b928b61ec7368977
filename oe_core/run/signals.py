"""Preemption: SIGTERM/SIGINT set a flag; the engine finishes the step, checkpoints and exits.  A second SIGINT
(Ctrl-C twice) interrupts at once."""
from __future__ import annotations

import signal
import sys
import threading


class PreemptionGuard:
    """Context manager that turns SIGTERM/SIGINT into ``self.requested = True``."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nreceived {signal.Signals(signum).name}: finishing the current step, then checkpointing",
              file=sys.stderr, flush=True)

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
