"""What ``OUT/.reproduce/`` records of a graph's runs, the lock on ``--out``, and the checks before a run.

``OUT/.reproduce/``: ``logs/NODE.log``, ``state/NODE.{done,failed}``, ``jobs/NODE.sbatch``, ``slurm_jobs.json`` /
``slurm_jobs.txt``, ``graph.json`` and ``lock`` (held by the ``--local`` run or the ``--slurm`` submission).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from oe_core.atomic import atomic_write_text
from oe_core.errors import OEError
from oe_core.lock import FileLock, lock_holder

from .graph import Node


STATE = ".reproduce"


def state_dir(out: Path) -> Path:
    return out / STATE


def log_path(out: Path, node: str) -> Path:
    return state_dir(out) / "logs" / f"{node}.log"


def _run_complete(run: Path) -> bool:
    """A training run folder whose configured epochs are all done."""
    try:
        cfg = json.loads((run / "config.json").read_text())
        rows = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(cfg.get("epochs")) and len(rows) >= int(cfg["epochs"]) and (run / "checkpoint.pt").exists()


def finished(out: Path, node: Node) -> bool:
    if not all(Path(p).exists() for p in node.outputs):
        return False
    if node.run_folder and _run_complete(Path(node.run_folder)):
        return True
    return (state_dir(out) / "state" / f"{node.name}.done").exists()


def checkpoint_note(node: Node) -> str:
    if node.run_folder and (Path(node.run_folder) / "checkpoint.pt").exists():
        return "; a checkpoint is there: it resumes"
    return ""


def mark(out: Path, node: str, what: str, text: str) -> None:
    d = state_dir(out) / "state"
    d.mkdir(parents=True, exist_ok=True)
    for other in ("done", "failed"):
        if other != what:
            (d / f"{node}.{other}").unlink(missing_ok=True)
    atomic_write_text(d / f"{node}.{what}", text + "\n")


def failed_note(out: Path, node: str) -> Optional[str]:
    p = state_dir(out) / "state" / f"{node}.failed"
    return p.read_text().strip() if p.exists() else None


def _held(out: Path, holder: str) -> OEError:
    return OEError(f"--out {str(out)!r} is held by another reproduce run ({holder}); wait for it, stop it, or use "
                   "another --out")


def out_lock(out: Path, what: str) -> FileLock:
    """The exclusive lock on ``OUT/.reproduce/lock``: one reproduce run (local or submitting) per ``--out``; the
    holder note is ``pid N, WHAT`` (``--status`` and a refused second run read it)."""
    return FileLock(state_dir(out) / "lock", f"pid {{pid}}, {what}", lambda holder: _held(out, holder))


def out_holder(out: Path) -> Optional[str]:
    """The note of the live process holding ``out``'s lock, or ``None``."""
    return lock_holder(state_dir(out) / "lock")


def check_not_held(out: Path) -> None:
    holder = out_holder(out)
    if holder:
        raise _held(out, holder)


def saved_graph(out: Path) -> Optional[list[Node]]:
    p = state_dir(out) / "graph.json"
    if not p.exists():
        return None
    with contextlib.suppress(ValueError, TypeError, KeyError):
        return [Node(**d) for d in json.loads(p.read_text())["nodes"]]
    return None


def save_graph(out: Path, nodes: list[Node]) -> None:
    d = state_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "graph.json", json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=1) + "\n")


def check_data(nodes: list[Node], data_root: Path) -> None:
    """One line naming the first missing dataset a selected node needs."""
    from oe_core.data import dataset_info, get_dataset

    if not data_root.is_dir():
        raise OEError(f"--data-root {str(data_root)!r} is not a folder (the datasets go there; "
                      "python -m oe_core.data lists them)")
    seen: dict[tuple, Optional[str]] = {}
    for n in nodes:
        for name, split in n.datasets:
            try:
                entry = dataset_info(name)
            except Exception as e:  # an unknown name from --score-sets / --outliers
                raise OEError(f"node {n.name}: {e}") from None
            split = split or entry.default_split
            key = (name, split)
            if key not in seen:
                seen[key] = None
                if entry.needs_root:
                    try:
                        get_dataset(name, split=split, root=data_root)
                    except OEError as e:
                        seen[key] = str(e)
                    except Exception as e:  # a damaged file the builder did not turn into an OEError
                        seen[key] = f"{type(e).__name__}: {e}"
            if seen[key]:
                raise OEError(f"missing data set for node {n.name}: {name} ({split}): {seen[key]}")


def check_deps_selected(graph: list[Node], sel: list[Node], out: Path) -> None:
    names = {n.name for n in sel}
    by = {n.name: n for n in graph}
    for n in sel:
        for d in n.deps:
            if d not in names and not finished(out, by[d]):
                raise OEError(f"node {n.name} needs {d}, which is neither finished in {str(out)!r} nor selected "
                              "(add it to --only, or take it off --skip)")
