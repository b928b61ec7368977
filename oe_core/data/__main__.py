"""``python -m oe_core.data``: list the registered datasets, where their files go and where
to get them; with ``--check --data-root DIR``, also build every split and report which
are present (and intact) under DIR -- exit code 1 when any listed split is missing."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..config import help_field, parse_config, require
from ..errors import OEError, cli_main
from . import DatasetEntry, dataset_info, get_dataset, list_datasets


@dataclass
class DataListConfig:
    """List the suite's datasets: role, splits, files under the data root, download URL."""

    data_root: Optional[str] = help_field(None, "the data root folder (needed by --check)")
    check: bool = help_field(False, "build every split of every listed dataset under --data-root and "
                                    "report which are present (this reads the files, e.g. CIFAR checksums)")
    pattern: str = help_field("*", "only list datasets whose name matches this glob, e.g. 'cifar*'")

    def validate(self) -> None:
        require(not self.check or bool(self.data_root), "--check needs --data-root DIR")


def split_status(entry: DatasetEntry, split: str, root: Path) -> str:
    """'ok (N images)', 'generated' or 'MISSING: <the one-line reason the split cannot be built>'."""
    if not entry.needs_root:
        return "generated (no files needed)"
    try:
        ds = get_dataset(entry.name, split=split, root=root)
    except OEError as e:
        return f"MISSING: {e}"
    return f"ok ({len(ds)} images)"


def describe(entry: DatasetEntry) -> list[str]:
    lines = [f"{entry.name}  [{entry.role}; splits: {', '.join(entry.splits)}"
             + (f"; {entry.num_classes} classes" if entry.num_classes else "")
             + ("" if entry.normalize else "; fed raw in [-1, 1], not mean/std-normalised") + "]",
             f"    {entry.description}"]
    if entry.needs_root:
        lines.append(f"    files: <data-root>/{entry.files}")
        lines.append(f"    get:   {entry.url}" + ("  (or --download)" if entry.can_download else ""))
    else:
        lines.append("    files: none (generated)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(DataListConfig, argv, prog="python -m oe_core.data")
    root = Path(cfg.data_root).expanduser() if cfg.data_root else None
    names = list_datasets(cfg.pattern)
    if not names:
        raise OEError(f"no dataset matches {cfg.pattern!r}; known: {', '.join(list_datasets())}")
    missing = []
    for name in names:
        entry = dataset_info(name)
        print("\n".join(describe(entry)))
        if cfg.check:
            for split in entry.splits:
                status = split_status(entry, split, root)
                print(f"    {split}: {status}")
                if status.startswith("MISSING"):
                    missing.append(f"{name}:{split}")
    if missing:
        print(f"missing under {str(root)!r}: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
