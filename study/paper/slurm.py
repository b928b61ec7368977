"""SLURM: one ``sbatch`` job per node, chained with ``--dependency=afterok``, and what the queue says of them.

A job script passes a SIGTERM (``--signal=B:TERM@120``, a preemption) on to its run, which checkpoints and exits 75;
the job then requeues itself and the requeued job resumes.  Resources per kind of node come from
``scripts/reproduce_resources.toml``, read under the user's ``--resources`` file.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from oe_core.atomic import atomic_write_text
from oe_core.errors import EXIT_PREEMPTED, OEError

from .graph import ROOT, SCRIPTS, Node
from .state import finished, log_path, out_lock, state_dir


DEFAULT_RESOURCES = SCRIPTS / "reproduce_resources.toml"
RESOURCE_KEYS = {"partition": str, "account": str, "qos": str, "time": str, "nodes": int, "gpus_per_node": int,
                 "nproc_per_task": int, "tasks_per_node": int, "cpus_per_task": int, "mem": str,
                 "rdzv_port": int, "extra": list}


def slurm_jobs(out: Path) -> dict:
    p = state_dir(out) / "slurm_jobs.json"
    return json.loads(p.read_text()) if p.exists() else {}


def slurm_states(ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (STATE, reason) from squeue, then sacct, then scontrol (whichever is there and knows)."""
    states: dict[str, tuple[str, str]] = {}
    if not ids:
        return states
    if shutil.which("squeue"):
        r = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"], capture_output=True,
                           text=True, timeout=60)
        for line in r.stdout.splitlines():
            jid, st, reason = (line.split("|") + ["", ""])[:3]
            if jid in ids:
                states[jid] = (st, "" if reason in ("None", "(null)") else reason)
    rest = [i for i in ids if i not in states]
    if rest and shutil.which("sacct"):
        r = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(rest), "-o", "JobID,State,ExitCode"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 2 and parts[0] in rest:
                    states[parts[0]] = (parts[1].split()[0], f"exit {parts[2]}" if len(parts) > 2 else "")
    rest = [i for i in ids if i not in states]
    if rest and shutil.which("scontrol"):
        for jid in rest:
            r = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True, timeout=60)
            fields = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
            if "JobState" in fields:
                reason = fields.get("Reason", "None")
                states[jid] = (fields["JobState"], "" if reason == "None" else reason)
    return states


ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}


def active_slurm_jobs(out: Path) -> list[str]:
    jobs = slurm_jobs(out)
    if not jobs or not shutil.which("squeue"):
        return []
    states = slurm_states([j["job"] for j in jobs.values()])
    return [f"{name} (job {j['job']}, {states[j['job']][0].lower()})" for name, j in jobs.items()
            if j["job"] in states and states[j["job"]][0] in ACTIVE]


def check_not_busy(out: Path) -> None:
    busy = active_slurm_jobs(out)
    if busy:
        raise OEError(f"--out {str(out)!r} is held by another run: SLURM jobs still queued or running: "
                      f"{', '.join(busy[:4])}{' ...' if len(busy) > 4 else ''}; wait, scancel them, or use "
                      "another --out")


def load_resources(path: Optional[str]) -> dict[str, dict]:
    import tomllib

    def read(p: Path) -> dict:
        try:
            return tomllib.loads(p.read_text())
        except OSError as e:
            raise OEError(f"cannot read the resources file {str(p)!r} ({e.strerror or e})") from None
        except tomllib.TOMLDecodeError as e:
            raise OEError(f"resources file {str(p)!r}: {e}") from None

    base = read(DEFAULT_RESOURCES)
    user = read(Path(path)) if path else {}
    kinds = sorted(set(base) | {"default"})
    for sec, vals in user.items():
        if not isinstance(vals, dict):
            raise OEError(f"resources file {path!r}: {sec!r} is not a [section] (sections: {', '.join(kinds)})")
        if sec not in base:
            raise OEError(f"resources file {path!r}: unknown section [{sec}] (sections: {', '.join(kinds)})")
        for k, v in vals.items():
            if k not in RESOURCE_KEYS:
                raise OEError(f"resources file {path!r}: unknown key {k!r} in [{sec}] "
                              f"(keys: {', '.join(RESOURCE_KEYS)})")
            if not isinstance(v, RESOURCE_KEYS[k]):
                raise OEError(f"resources file {path!r}: [{sec}] {k} must be a {RESOURCE_KEYS[k].__name__}")
    merged = {}
    for sec in base:
        # built-in default < built-in kind < your [default] < your kind
        r = {**base["default"], **base[sec], **user.get("default", {}), **user.get(sec, {})}
        merged[sec] = r
    return merged


def sbatch_options(res: dict) -> list[str]:
    opts = [f"--nodes={res['nodes']}", f"--ntasks-per-node={res['tasks_per_node']}",
            f"--cpus-per-task={res['cpus_per_task']}", f"--time={res['time']}"]
    if res["gpus_per_node"] > 0:
        opts.append(f"--gpus-per-node={res['gpus_per_node']}")
    for key in ("partition", "account", "qos", "mem"):
        if res[key]:
            opts.append(f"--{key}={res[key]}")
    return opts + list(res["extra"])


def job_script(node: Node, res: dict, out: Path, py: str) -> str:
    nproc = res.get("nproc_per_task") or max(res["gpus_per_node"], 1)
    ranks = res["nodes"] * res["tasks_per_node"] * nproc
    log = log_path(out, node.name)
    if node.module and ranks > 1:
        _, _, module, *args = node.cmds[0]
        cmds = [["srun", "--kill-on-bad-exit=1", py, "-m", "torch.distributed.run", "--nnodes", "$SLURM_NTASKS",
                 "--nproc_per_node", str(nproc), "--rdzv_id", "$SLURM_JOB_ID", "--rdzv_backend", "c10d",
                 "--rdzv_endpoint", f"$HEAD_NODE:{res['rdzv_port']}", "-m", module, *args]]
    else:
        cmds = node.cmds

    def q(a: str) -> str:
        return a if a.startswith("$") else shlex.quote(a)

    body = " && ".join(" ".join(q(a) for a in c) for c in cmds)
    if len(cmds) > 1:
        body = f"( {body} )"
    state = state_dir(out) / "state"
    lines = ["#!/bin/bash",
             f"# {node.name}: {node.title} (written by python -m study.reproduce --slurm)",
             f"#SBATCH --job-name=oe-{node.name}",
             f"#SBATCH --output={log}",
             "#SBATCH --open-mode=append",
             "#SBATCH --signal=B:TERM@120",
             "#SBATCH --requeue",
             *(f"#SBATCH {opt}" for opt in sbatch_options(res)),
             "set -uo pipefail",
             f"cd {shlex.quote(str(ROOT))}",
             f"export OE_PYTHON={shlex.quote(py)}",
             f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
             *(f"export {k}={shlex.quote(v)}" for k, v in node.env.items()),
             f"STATE={shlex.quote(str(state))}",
             f"NODE={node.name}",
             'mkdir -p "$STATE"; rm -f "$STATE/$NODE.failed"',
             'HEAD_NODE="$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n 1)"',
             'HEAD_NODE="${HEAD_NODE:-localhost}"',
             'echo "== $NODE: SLURM job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname), $(date), '
             'start $(date +%s.%N)"',
             "TERMED=0",
             "child=",
             "# the batch shell gets SIGTERM (--signal=B:TERM@120, or a preemption): pass it to the run, which",
             "# checkpoints and exits 75; the job then requeues itself and the requeued job resumes",
             'trap \'TERMED=1; echo "== SIGTERM: passing it on to the run"; '
             '[[ -n "$child" ]] && kill -TERM -- "-$child" 2>/dev/null\' TERM',
             "set -m  # the run gets its own process group, so the signal reaches every process of it",
             f"{body} &",
             "child=$!",
             'while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done',
             "set +m",
             'if [[ $rc -eq 0 ]]; then',
             '  echo "job $SLURM_JOB_ID, $(date)" > "$STATE/$NODE.done"',
             '  echo "== $NODE: finished at $(date +%s.%N)"; exit 0',
             "fi",
             f'if [[ $rc -eq {EXIT_PREEMPTED} || $TERMED -eq 1 ]]; then',
             '  echo "== $NODE: interrupted (exit $rc); requeueing job $SLURM_JOB_ID to resume from the checkpoint"',
             '  if scontrol requeue "$SLURM_JOB_ID"; then exit 0; fi',
             '  echo "exit $rc (interrupted, requeue refused; run reproduce --slurm again to resubmit); '
             f'log {log}" > "$STATE/$NODE.failed"',
             f"  exit {EXIT_PREEMPTED}",
             "fi",
             f'echo "exit $rc in SLURM job $SLURM_JOB_ID; log {log}" > "$STATE/$NODE.failed"',
             'echo "== $NODE: failed with exit code $rc"',
             'exit "$rc"',
             ""]
    return "\n".join(lines)


def submit_slurm(res: dict, sel: list[Node], out: Path, py: str) -> int:
    """Submit the unfinished nodes of ``sel`` as sbatch jobs chained by ``afterok`` (``res``: the resources file,
    loaded and the presence of sbatch checked by :func:`main`)."""
    with out_lock(out, "--slurm (submitting)"):
        check_not_busy(out)
        todo = [n for n in sel if not finished(out, n)]
        jobs_dir = state_dir(out) / "jobs"
        jobs_dir.mkdir(parents=True, exist_ok=True)
        log_path(out, "x").parent.mkdir(parents=True, exist_ok=True)
        scripts = {}
        for n in todo:
            p = jobs_dir / f"{n.name}.sbatch"
            p.write_text(job_script(n, res[n.kind], out, py))
            scripts[n.name] = p
        submitted: dict[str, dict] = {}
        for n in todo:
            deps = [submitted[d]["job"] for d in n.deps if d in submitted]
            cmd = ["sbatch", "--parsable"]
            if deps:
                cmd.append("--dependency=afterok:" + ":".join(deps))
            cmd.append(str(scripts[n.name]))
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
            if r.returncode != 0:
                for j in submitted.values():
                    subprocess.run(["scancel", j["job"]], capture_output=True, timeout=60)
                msg = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
                raise OEError(f"sbatch refused {n.name}: {msg}"
                              + (f" (the {len(submitted)} jobs submitted before it were cancelled)"
                                 if submitted else ""))
            jid = r.stdout.strip().split(";")[0]
            submitted[n.name] = {"job": jid, "after": deps, "script": str(scripts[n.name]),
                                 "log": str(log_path(out, n.name)), "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (state_dir(out) / "state" / f"{n.name}.failed").unlink(missing_ok=True)
        jobs = {**{k: v for k, v in slurm_jobs(out).items() if k not in submitted}, **submitted}
        atomic_write_text(state_dir(out) / "slurm_jobs.json", json.dumps(jobs, indent=1) + "\n")
        atomic_write_text(state_dir(out) / "slurm_jobs.txt", "".join(f"{k} {v['job']}\n" for k, v in jobs.items()))
    for n in sel:
        if n.name in submitted:
            j = submitted[n.name]
            after = f"  after {','.join(j['after'])}" if j["after"] else ""
            print(f"{n.name:34s} job {j['job']}{after}")
        else:
            print(f"{n.name:34s} finished, not submitted")
    print(f"{len(submitted)} jobs submitted; ids in {state_dir(out) / 'slurm_jobs.txt'}; "
          f"logs in {state_dir(out) / 'logs'}; python -m study.reproduce --status --out {out}",
          file=sys.stderr)
    return 0
