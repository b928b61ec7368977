"""Progress bars on long work: tqdm on stderr, or the plain iterable when switched off."""
from __future__ import annotations

import sys
from typing import Iterable, Optional, TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], desc: str, enabled: bool = True, total: Optional[int] = None) -> Iterable[T]:
    """``items`` wrapped in a tqdm bar on stderr (cleared when done) when ``enabled`` and stderr is a terminal
    (a log file or pipe gets no bar, so error output stays one line)."""
    if not enabled:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, total=total, dynamic_ncols=True, leave=False, file=sys.stderr, disable=None)
