"""``python -m oe_core.data``: list the registered datasets, where their files go and where they come from; with
``--check --data-root DIR``, also which splits are present and intact under DIR (exit code 1 when any listed split
is missing or changed).  ``python -m oe_core.data fetch`` downloads datasets (:mod:`oe_core.data.fetch`).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..cli_config import help_field, parse_config, require
from ..errors import EXIT_USER_ERROR, DataError, OEError, cli_main
from . import DatasetEntry, dataset_info, get_dataset, list_datasets
from .fetch import (LOCK_FILE, MIRROR_ENV, DataLock, cannot_fetch, check_fetched, fetch_dataset, fetchable_names,
                    parse_spec)


@dataclass
class DataListConfig:
    """List the suite's datasets: role, splits, files under the data root, download URL."""

    data_root: Optional[str] = help_field(None, "the data root folder (needed by --check)")
    check: bool = help_field(False, "build every split of every listed dataset under --data-root and "
                                    "report which are present (this reads the files, e.g. CIFAR checksums)")
    pattern: str = help_field("*", "only list datasets whose name matches this glob, e.g. 'cifar*'")
    fetched: bool = help_field(False, f"with --check: only the datasets fetched into --data-root (recorded in its "
                                      f"{LOCK_FILE})")

    def validate(self) -> None:
        require(not self.check or bool(self.data_root), "--check needs --data-root DIR")
        require(not self.fetched or self.check, "--fetched goes with --check")


@dataclass
class FetchConfig:
    """Download datasets into the data root: checked against the hash the source publishes (or the one recorded in
    DIR/oe-data.lock at the first fetch), unpacked into the layout the loaders read, and placed only when whole.
    A rerun downloads only what is missing."""

    names: list[str] = help_field([], "datasets to fetch, NAME or NAME:SPLIT (e.g. svhn:test); "
                                      "`python -m oe_core.data` lists them", positional=True)
    data_root: str = help_field("", "the data root folder to fetch into (created if needed)")
    all_paper: bool = help_field(False, "fetch every dataset of the paper with a public source: "
                                        + " ".join(fetchable_names()))
    mirror: str = help_field("", f"fetch each file from MIRROR/<published file name> instead of its published URL "
                                 f"(an http(s) URL or a local folder); unset: ${MIRROR_ENV} if set")
    retries: int = help_field(2, "retries of a failed transfer before giving up")
    progress: bool = help_field(True, "progress bars on stderr (when it is a terminal)")

    def validate(self) -> None:
        require(bool(self.data_root), "fetch needs --data-root DIR")
        require(bool(self.names) != self.all_paper, "fetch needs dataset names or --all-paper (not both)")
        require(self.retries >= 0, f"--retries must be >= 0, got {self.retries}")


def split_status(entry: DatasetEntry, split: str, root: Path) -> str:
    """'ok (N images)', 'generated' or 'MISSING: <the one-line reason the split cannot be built>'."""
    if not entry.needs_root:
        return "generated (no files needed)"
    try:
        ds = get_dataset(entry.name, split=split, root=root)
    except OEError as e:
        return f"MISSING: {e}"
    return f"ok ({len(ds)} images)"


def describe_sources(entry: DatasetEntry, lock: Optional[DataLock] = None) -> list[str]:
    """Where ``entry``'s files come from: URL and hash of each, the evaluation subset, or why it is not fetched."""
    why = cannot_fetch(entry)
    if why and entry.needs_root:
        return [f"    fetch: no ({why.split(': ', 1)[-1]})"]
    lines = []
    for src in entry.sources:
        recorded = lock.file(src.filename) if lock is not None else None
        if src.pin is not None:
            digest = f"md5 {src.pinned_md5()}, pinned by {src.pinned_by()}"
        elif recorded:
            digest = f"sha256 {recorded['sha256']}, recorded in {LOCK_FILE} at the first fetch"
        else:
            digest = f"no published hash: its sha256 is recorded in <data-root>/{LOCK_FILE} at the first fetch"
        lines.append(f"    source{' (' + src.split + ')' if src.split else ''}: {src.url}  [{digest}]")
        if src.members is not None:
            sub = src.members
            lines.append(f"    subset: {sub.name}: {sub.description} [{sub.count} images listed in "
                         f"oe_core/data/subsets/{sub.file}, sha256 {sub.sha256}]")
    if entry.sources:
        lines.append(f"    fetch: python -m oe_core.data fetch {entry.name} --data-root DIR")
    return lines


def describe(entry: DatasetEntry) -> list[str]:
    lines = [f"{entry.name}  [{entry.role}; splits: {', '.join(entry.splits)}"
             + (f"; {entry.num_classes} classes" if entry.num_classes else "")
             + ("" if entry.normalize else "; fed raw in [-1, 1], not mean/std-normalised") + "]",
             f"    {entry.description}"]
    if not entry.needs_root:
        return lines + ["    files: none (generated)"]
    return lines + [f"    files: <data-root>/{entry.files}",
                    f"    get:   {entry.url}" + ("  (or --download)" if entry.can_download else "")]


def _fetched_splits(entry: DatasetEntry, lock: DataLock) -> tuple[str, ...]:
    """The splits of ``entry`` whose files were fetched (a source of every split: all of them)."""
    fetched = {rec["source"] for rec in lock.targets_of(entry.name).values()}
    splits = {src.split for src in entry.sources if src.filename in fetched}
    return entry.splits if "" in splits else tuple(s for s in entry.splits if s in splits)


def fetch_main(argv: Sequence[str]) -> int:
    cfg = parse_config(FetchConfig, argv, prog="python -m oe_core.data fetch")
    specs = fetchable_names() if cfg.all_paper else list(cfg.names)
    for spec in specs:  # every name checked before anything is downloaded
        why = cannot_fetch(parse_spec(spec)[0])
        if why:
            raise DataError(why)
    mirror = cfg.mirror or os.environ.get(MIRROR_ENV, "")
    failed = 0
    for spec in specs:
        try:
            result = fetch_dataset(spec, cfg.data_root, mirror=mirror, retries=cfg.retries, progress=cfg.progress)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(f"{result.name}: {len(result.placed)} placed, {len(result.present)} already present, "
              f"{len(result.downloaded)} file(s) downloaded")
    return EXIT_USER_ERROR if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fetch"]:
        return fetch_main(argv[1:])
    cfg = parse_config(DataListConfig, argv, prog="python -m oe_core.data",
                       description=DataListConfig.__doc__.strip() + " Subcommand: `python -m oe_core.data fetch "
                       "--help` downloads datasets.")
    root = Path(cfg.data_root).expanduser() if cfg.data_root else None
    lock = DataLock(root) if root is not None and root.is_dir() else None
    names = list_datasets(cfg.pattern)
    if cfg.fetched:
        names = [n for n in names if n in lock.datasets()] if lock is not None else []
        if not names:
            raise DataError(f"no dataset matching {cfg.pattern!r} was fetched into {str(root)!r} (no record in "
                            f"its {LOCK_FILE})")
    if not names:
        raise OEError(f"no dataset matches {cfg.pattern!r}; known: {', '.join(list_datasets())}")
    missing = []
    for name in names:
        entry = dataset_info(name)
        print("\n".join(describe(entry) + describe_sources(entry, lock)))
        if cfg.check:
            for split in (_fetched_splits(entry, lock) if cfg.fetched else entry.splits):
                status = split_status(entry, split, root)
                print(f"    {split}: {status}")
                if status.startswith("MISSING"):
                    missing.append(f"{name}:{split}")
            for line in check_fetched(root, [name]).get(name, []):
                print(f"    fetched {line}")
                if not line.endswith(": ok"):
                    missing.append(f"{name} ({line})")
    if missing:
        print(f"missing or changed under {str(root)!r}: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
