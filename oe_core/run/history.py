"""Per-epoch metric history, written as ``metrics.csv`` and ``metrics.json`` beside the checkpoint.  It lives in the
checkpoint too, so a resumed run rewrites exactly the rows it had (no duplicates, no rows of lost epochs)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import atomic_write_text


def write_history(folder: Path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))    # every column, in order of first appearance
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(folder / "metrics.csv", buf.getvalue())
    atomic_write_text(folder / "metrics.json", json.dumps(rows, indent=1) + "\n")
