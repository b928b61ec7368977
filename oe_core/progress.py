"""Progress bars on long work: the one tqdm helper of the suite (tools' loops and the training engine's epochs)."""
from __future__ import annotations

import sys
from typing import Iterable, Optional, TypeVar

T = TypeVar("T")


def progress_bar(items: Optional[Iterable[T]], desc: str, enabled: bool = True, total: Optional[int] = None, *,
                 initial: int = 0, terminal_only: bool = True, **options):
    """``items`` wrapped in a tqdm bar on stderr, cleared when done (tqdm's ``set_postfix`` and ``close`` are no-ops
    when the bar is off).  Off when ``enabled`` is false and, with ``terminal_only``, when stderr is not a terminal;
    the engine's epoch bars pass ``terminal_only=False`` so they also reach run logs.  ``initial``: items already
    done (a resumed epoch's first step); ``options``: more of tqdm's (``unit``, for a bar updated by hand)."""
    from tqdm.auto import tqdm
    disable = (None if terminal_only else False) if enabled else True
    return tqdm(items, desc=desc, total=total, initial=initial, dynamic_ncols=True, leave=False, file=sys.stderr,
                disable=disable, **options)
