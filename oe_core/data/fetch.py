"""``python -m oe_core.data fetch``: download a dataset's published files with pooch, check them, and place them in
the layout the loaders read -- whole, verified and unpacked, or not at all (docs/paper.md, "Fetching").

For each :class:`~oe_core.data.sources.Source`: a target recorded in the lock file (:class:`DataLock`) is re-hashed
and kept, or refused if it changed; else the file is downloaded into ``<root>/.oe-fetch/``, checked, an archive
unpacked there (tarfile's ``data`` filter), its digest recorded, and the result renamed to its target in one step.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..atomic import atomic_write_text, file_sha256
from ..errors import DataError, OEError, one_line
from ..lock import flocked
from ..progress import progress_bar
from .registry import DATASETS, DatasetEntry, dataset_info
from .sources import Source

STAGING = ".oe-fetch"
MIRROR_ENV = "OE_DATA_MIRROR"
LOCK_FILE = "oe-data.lock"
FORMAT = "oe-data-lock/1"


def tree_digest(path: Path) -> dict:
    """``{"sha256", "files", "bytes"}`` of a file, or of a folder (every file under it, by relative path)."""
    path = Path(path)
    if path.is_file():
        return {"sha256": file_sha256(path), "files": 1, "bytes": path.stat().st_size}
    h, count, size = hashlib.sha256(), 0, 0
    for p in sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()):
        h.update(f"{p.relative_to(path).as_posix()}\t{file_sha256(p)}\n".encode())
        count += 1
        size += p.stat().st_size
    return {"sha256": h.hexdigest(), "files": count, "bytes": size}


class DataLock:
    """The data root's lock file, ``oe-data.lock``: what the fetch downloaded and placed (read at construction;
    :meth:`record` writes it back atomically).  One JSON file under the data root::

        {"format": "oe-data-lock/1",
         "files":   {"<published file name>": {"url", "sha256", "bytes", "pinned"}},
         "targets": {"<path under the root>": {"dataset", "source", "sha256", "files", "bytes"}}}

    ``files``: the sha256 of every downloaded file (where the source publishes no hash, every later fetch must match
    it).  ``targets``: a digest of what was placed (:func:`tree_digest`), so ``--check`` finds a set that changed."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self.data = {"format": FORMAT, "files": {}, "targets": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                assert data.get("format") == FORMAT and isinstance(data.get("files"), dict)
                assert isinstance(data.get("targets"), dict)
            except (OSError, ValueError, AssertionError, AttributeError):
                raise DataError(f"the data lock file {str(self.path)!r} is unreadable or not an {FORMAT} file; "
                                "move it away to record the hashes anew") from None
            self.data = data

    def file(self, filename: str) -> Optional[dict]:
        return self.data["files"].get(filename)

    def target(self, target: str) -> Optional[dict]:
        return self.data["targets"].get(target)

    def targets_of(self, dataset: str) -> dict[str, dict]:
        return {t: rec for t, rec in self.data["targets"].items() if rec.get("dataset") == dataset}

    def datasets(self) -> list[str]:
        return sorted({rec["dataset"] for rec in self.data["targets"].values()})

    def record(self, filename: str, file_record: dict, target: str, target_record: dict) -> None:
        self.data["files"][filename] = file_record
        self.data["targets"][target] = target_record
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")


def verify_target(root: Path, target: str, record: dict) -> str:
    """'' when ``root/target`` still matches its record, else what differs."""
    path = Path(root) / target
    if not path.exists():
        return "missing"
    now = tree_digest(path)
    if now["sha256"] != record["sha256"]:
        return (f"changed since it was fetched ({now['files']} files, {now['bytes']} bytes now; "
                f"{record['files']} files, {record['bytes']} bytes recorded)")
    return ""


@dataclass
class FetchResult:
    """What one dataset's fetch did: the files downloaded, and the targets placed or already present."""

    name: str
    downloaded: list[str] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def fetchable_names() -> list[str]:
    """Every dataset of ``oe_core`` with a published source (what ``fetch --all-paper`` fetches; the paper's
    datasets are all ``oe_core``'s own, so no dataset plugin is imported)."""
    return [n for n in DATASETS.names(plugins=False) if DATASETS.get(n).sources]


def parse_spec(spec: str) -> tuple[DatasetEntry, str]:
    """``NAME`` or ``NAME:SPLIT`` -> (entry, split or ''), with one-line errors for unknown names and splits."""
    name, _, split = spec.partition(":")
    entry = dataset_info(name)
    if split and split not in entry.splits:
        raise OEError(f"dataset {entry.name!r} has no split {split!r}; splits: {', '.join(entry.splits)}")
    return entry, split


def cannot_fetch(entry: DatasetEntry) -> Optional[str]:
    """The one line that says why ``entry`` cannot be fetched and what to do instead (``None``: it can)."""
    if entry.withdrawn:
        return f"dataset {entry.name!r}: {entry.withdrawn}"
    if not entry.sources:
        if not entry.needs_root:
            return f"dataset {entry.name!r} is generated, not downloaded: nothing to fetch"
        return (f"dataset {entry.name!r} has no public source the suite can fetch; by hand: get it from "
                f"{entry.url} and place {entry.files} under the data root")
    return None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _bar(desc: str, enabled: bool, unit: str = "B") -> Iterator[Optional[object]]:
    """A :func:`~oe_core.progress.progress_bar` updated by hand, closed at the end (``None`` when off or stderr is
    not a terminal)."""
    # a byte bar starts with a total: pooch tests the bar's truth (refused without one), then sets Content-Length
    with progress_bar(None, desc, enabled, 1 if unit == "B" else None, unit=unit, unit_scale=unit == "B") as bar:
        yield None if bar.disable else bar


def _downloader(name: str, url: str, progress: Optional[object]) -> Callable:
    """pooch's HTTP downloader, or a copy from a local mirror folder (a path or a ``file://`` URL)."""
    import pooch

    local = url[len("file://"):] if url.startswith("file://") else (url if "://" not in url else "")
    if local:
        def copy(_url: str, output_file: str, _pooch) -> None:
            try:
                shutil.copyfile(local, output_file)
            except OSError as e:
                raise DataError(f"dataset {name!r}: cannot copy {local!r} from the mirror folder "
                                f"({e.strerror or e})") from None
        return copy
    return pooch.HTTPDownloader(progressbar=progress if progress is not None else False, timeout=60)


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def _download(entry: DatasetEntry, src: Source, staging: Path, lock: DataLock, mirror: str, retries: int,
              progress: bool) -> tuple[Path, bool]:
    """The verified download of ``src`` in ``staging`` and whether it was transferred now (``False``: an earlier,
    verified download was reused)."""
    import pooch
    import requests

    url = src.url_from(mirror)
    recorded = lock.file(src.filename)
    known = (f"md5:{src.pinned_md5()}" if src.pinned_md5() else f"sha256:{recorded['sha256']}" if recorded else None)
    path = staging / src.filename
    if path.is_file():   # pooch renames a download to its name only when it is whole and verified
        algorithm, _, digest = (known or ":").partition(":")
        if known is None or pooch.file_hash(str(path), algorithm) == digest:
            return path, False
        path.unlink()
    _log(f"{entry.name}: fetching {url}")
    registry = pooch.create(path=str(staging), base_url="", registry={src.filename: known},
                            urls={src.filename: url}, retry_if_failed=retries)
    try:
        with _bar(f"{entry.name}: {src.filename}", progress) as bar, _quiet_pooch():
            registry.fetch(src.filename, downloader=_downloader(entry.name, url, bar))
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        gone = (f"; the source may have gone: get it by hand from {entry.url} and place {entry.files} under the "
                f"data root, or fetch from a copy with --mirror" if status in (404, 410) else "")
        raise DataError(f"dataset {entry.name!r}: cannot fetch {url}: HTTP {status}{gone}") from None
    except ValueError as e:   # pooch: the hash does not match (the download is deleted)
        what = "the pinned hash" if src.pinned_md5() else f"the hash recorded in {lock.path.name} at its first fetch"
        raise DataError(f"dataset {entry.name!r}: {src.filename} from {url} does not match {what} and was "
                        f"deleted ({one_line(e, 200)})") from None
    except (requests.RequestException, OSError) as e:
        raise DataError(f"dataset {entry.name!r}: the transfer of {url} failed ({type(e).__name__}: "
                        f"{one_line(e, 160)}); run the same command again to retry") from None
    return path, True


def _unpack(entry: DatasetEntry, src: Source, archive: Path, into: Path, progress: bool) -> Path:
    """Unpack ``archive`` into the fresh folder ``into``; returns the folder that becomes the target."""
    wanted = set(src.members.names()) if src.members is not None else None
    prefix = src.archive_dir.rstrip("/") + "/" if src.archive_dir else ""
    found = set()
    try:
        with _bar(f"{entry.name}: unpacking {archive.name}", progress, "file") as bar, tarfile.open(archive) as tar:
            for member in tar:
                if wanted is not None:
                    base = member.name.rsplit("/", 1)[-1]
                    if not (member.isfile() and member.name.startswith(prefix) and base in wanted):
                        continue
                    found.add(base)
                tar.extract(member, into, filter="data")
                if bar is not None:
                    bar.update(1)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"dataset {entry.name!r}: cannot unpack {archive.name} ({type(e).__name__}: "
                        f"{one_line(e, 160)})") from None
    if wanted is not None and found != wanted:
        missing = sorted(wanted - found)
        raise DataError(f"dataset {entry.name!r}: {archive.name} lacks {len(missing)} of the {len(wanted)} images "
                        f"of the evaluation subset {src.members.name} (e.g. {missing[0]})")
    if src.archive_dir:
        top = into / src.archive_dir
        if not top.is_dir():
            raise DataError(f"dataset {entry.name!r}: {archive.name} holds no folder {src.archive_dir!r} "
                            f"(found: {', '.join(sorted(p.name for p in into.iterdir())) or 'nothing'})")
        return top
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def _clean_staging(staging: Path) -> None:
    """Remove what an interrupted fetch left half-done: pooch's temporary files and half-unpacked folders."""
    for p in staging.glob("tmp*"):
        p.unlink(missing_ok=True) if p.is_file() else shutil.rmtree(p, ignore_errors=True)
    for p in staging.glob("unpack-*"):
        shutil.rmtree(p, ignore_errors=True)


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One fetch at a time per data root: an exclusive ``flock`` on the root folder itself, which ends with the
    process.  Not :class:`oe_core.lock.FileLock`: its lock file stays behind by design, and a fetch that fails
    promises to leave nothing in the data root."""
    with flocked(root) as taken:
        if not taken:
            raise DataError(f"another fetch into {str(root)!r} is running; wait for it to end")
        yield


def fetch_dataset(spec: str, root: str | Path, *, mirror: str = "", retries: int = 2,
                  progress: bool = True) -> FetchResult:
    """Fetch dataset ``spec`` (``NAME`` or ``NAME:SPLIT``) into ``root`` (see the module docstring); one-line
    :class:`DataError` for a withdrawn or unfetchable set, an HTTP error, a hash mismatch, a failed transfer, or a
    fetched set that changed since."""
    entry, split = parse_spec(spec)
    why = cannot_fetch(entry)
    if why:
        raise DataError(why)
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root):
        return _fetch(entry, split, root, mirror, retries, progress)


def _fetch(entry: DatasetEntry, split: str, root: Path, mirror: str, retries: int, progress: bool) -> FetchResult:
    staging = root / STAGING
    staging.mkdir(exist_ok=True)
    _clean_staging(staging)
    lock = DataLock(root)
    result = FetchResult(entry.name)
    try:
        for src in (s for s in entry.sources if not split or s.split in ("", split)):
            target = root / src.target
            recorded = lock.target(src.target)
            if target.exists():
                if recorded is None:
                    _log(f"{entry.name}: {src.target} is already under the data root (not fetched by the suite: "
                         "left as it is, not verified)")
                else:
                    problem = verify_target(root, src.target, recorded)
                    if problem:
                        raise DataError(f"dataset {entry.name!r}: {str(target)!r} {problem}; delete it to fetch "
                                        "it again")
                result.present.append(src.target)
                continue
            path, transferred = _download(entry, src, staging, lock, mirror, retries, progress)
            if transferred:
                result.downloaded.append(src.filename)
            file_record = {"url": src.url, "sha256": file_sha256(path), "bytes": path.stat().st_size,
                           "pinned": src.pinned_by()}
            target.parent.mkdir(parents=True, exist_ok=True)
            placed = path
            if src.is_archive:
                unpacked = staging / f"unpack-{entry.name}"
                unpacked.mkdir()
                placed = _unpack(entry, src, path, unpacked, progress)
            lock.record(src.filename, file_record, src.target,
                        {"dataset": entry.name, "source": src.filename, **tree_digest(placed)})
            os.replace(placed, target)
            if src.is_archive:
                shutil.rmtree(unpacked, ignore_errors=True)
                path.unlink()
            result.placed.append(src.target)
            _log(f"{entry.name}: {src.target} ready")
    finally:
        _clean_staging(staging)
        if not any(staging.iterdir()):
            staging.rmdir()
    return result


def check_fetched(root: str | Path, names: Optional[list[str]] = None) -> dict[str, list[str]]:
    """Every fetched target under ``root`` (of ``names``, default all in the lock file) -> its problems ('' ok)."""
    root = Path(root).expanduser()
    lock = DataLock(root)
    out: dict[str, list[str]] = {}
    for name in names or lock.datasets():
        for target, record in lock.targets_of(name).items():
            out.setdefault(name, []).append(f"{target}: {verify_target(root, target, record) or 'ok'}")
    return out
