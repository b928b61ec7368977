"""The settings each rendering tool ran with, kept beside its outputs (``<out>/config.json``) so that
``analysis.regenerate`` (``scripts/figures.sh``) can rebuild exactly the same tables and figures later."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import config_to_dict

CONFIG_NAME = "config.json"


def absolute_pairs(pairs: list[str]) -> list[str]:
    """``LABEL=PATH`` items with ``PATH`` made absolute (so the record still works from another folder)."""
    out = []
    for item in pairs:
        label, eq, path = item.partition("=")
        out.append(f"{label}={Path(path).expanduser().resolve()}" if eq else item)
    return out


def record_config(cfg: Any, out: Path, tool: str, **overrides: Any) -> None:
    """Write ``cfg`` (with ``overrides``) and the tool's module name to ``out/config.json``."""
    doc = {**config_to_dict(cfg), **overrides, "tool": tool}
    atomic_write_text(Path(out) / CONFIG_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_record(folder: Path) -> Optional[dict]:
    """The record in ``folder`` (``None`` when there is none or it is not one)."""
    path = Path(folder) / CONFIG_NAME
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("tool"), str) else None
