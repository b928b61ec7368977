"""``--status``: each node finished, running, pending, failed (with its log) or not started, from ``--out`` and,
under SLURM, from squeue / sacct / scontrol."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .graph import Node, build_graph, order, select
from .slurm import ACTIVE, slurm_jobs, slurm_states
from .state import checkpoint_note, failed_note, finished, log_path, out_holder, saved_graph


def node_status(out: Path, node: Node, jobs: dict, states: dict, local: Optional[str]) -> str:
    log = log_path(out, node.name)
    if finished(out, node):
        return "finished"
    job = jobs.get(node.name)
    if job:
        st, reason = states.get(job["job"], ("", ""))
        if st in ("RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"):
            return f"running (SLURM job {job['job']}; log {log})"
        if st in ACTIVE:
            return f"pending (SLURM job {job['job']}{', ' + reason if reason else ''})"
        note = failed_note(out, node.name)
        if note:
            return f"failed ({note})"
        if st:
            return f"failed (SLURM job {job['job']} {st.lower()}{', ' + reason if reason else ''}; log {log})"
        return f"failed (SLURM job {job['job']} ended without finishing; log {log})"
    if local and f"running {node.name}" in local:
        return f"running (local, {local.split(',')[0]}; log {log})"
    note = failed_note(out, node.name)
    if note:
        return f"failed ({note})"
    return "not started" + checkpoint_note(node)


NODE_STATES = ("finished", "running", "pending", "failed", "not started")


def state_of(status: str) -> str:
    """The state a :func:`node_status` line starts with ("not started; a checkpoint ..." -> "not started")."""
    return next(s for s in NODE_STATES if status.startswith(s))


def show_status(o, out: Path, py: str) -> int:
    """Print each selected node's status (the graph saved in ``out``, else the one ``o`` builds) and a summary."""
    graph = saved_graph(out)
    if graph is None:
        o.data_root = Path(o.data_root or ".").expanduser().resolve()
        graph = build_graph(o, py)
    sel = select(graph, o.only, o.skip)
    jobs = slurm_jobs(out)
    states = slurm_states([j["job"] for j in jobs.values()]) if jobs else {}
    local = out_holder(out)
    counts: dict[str, int] = {}
    for n in order(sel):
        st = node_status(out, n, jobs, states, local)
        counts[state_of(st)] = counts.get(state_of(st), 0) + 1
        print(f"{n.name:34s} {st}")
    print(", ".join(f"{v} {k}" for k, v in counts.items()), file=sys.stderr)
    return 0
