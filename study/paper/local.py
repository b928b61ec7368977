"""``--local``: the graph's nodes in order on this machine (finished ones skipped, an interrupted one resumed), and
``--run-node``: one node, as the scripts in ``scripts/`` run it."""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from oe_core.errors import EXIT_PREEMPTED

from .graph import ROOT, Node
from .slurm import check_not_busy
from .state import checkpoint_note, finished, log_path, mark, out_lock, state_dir


def _stream(proc: subprocess.Popen, log) -> None:
    assert proc.stdout is not None
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        log.write(chunk)
        log.flush()
        with contextlib.suppress(OSError):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()


def local_cmds(node: Node, gpus: int) -> list[list[str]]:
    if node.module and gpus > 1:
        py, _, module, *args = node.cmds[0]
        return [[py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus), "-m", module,
                 *args]]
    return node.cmds


def run_local(o, sel: list[Node], out: Path) -> int:
    with out_lock(out, "--local") as lock:
        check_not_busy(out)
        interrupted = {"sig": None}
        child: dict = {"proc": None}

        def on_signal(signum, frame):
            interrupted["sig"] = signum
            p = child["proc"]
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for i, node in enumerate(sel, 1):
                if finished(out, node):
                    print(f"[{i}/{len(sel)}] {node.name}: finished, skipped", file=sys.stderr)
                    continue
                log = log_path(out, node.name)
                log.parent.mkdir(parents=True, exist_ok=True)
                print(f"[{i}/{len(sel)}] {node.name}: {node.title}{checkpoint_note(node)} (log {log})",
                      file=sys.stderr, flush=True)
                lock.note(f", running {node.name}")
                (state_dir(out) / "state" / f"{node.name}.failed").unlink(missing_ok=True)
                rc = 0
                with open(log, "ab") as f:
                    f.write(f"== {node.name}: local run, pid {os.getpid()}, {time.ctime()}\n".encode())
                    for cmd in local_cmds(node, o.gpus):
                        f.write(("$ " + shlex.join(cmd) + "\n").encode())
                        f.flush()
                        proc = subprocess.Popen(cmd, env={**os.environ, **node.env}, cwd=ROOT,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                start_new_session=True)
                        child["proc"] = proc
                        _stream(proc, f)
                        rc = proc.wait()
                        child["proc"] = None
                        if rc != 0 or interrupted["sig"]:
                            break
                if interrupted["sig"] or rc == EXIT_PREEMPTED:
                    print(f"interrupted in {node.name} (exit {rc}); run the same command again to continue "
                          "(finished runs are skipped, this one resumes from its checkpoint)", file=sys.stderr)
                    return EXIT_PREEMPTED
                if rc != 0:
                    mark(out, node.name, "failed", f"exit {rc}; log {log}")
                    print(f"error: {node.name} failed with exit code {rc}; log {log}", file=sys.stderr)
                    return 1
                mark(out, node.name, "done", f"local, {time.ctime()}")
                lock.note("")
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    print(f"all {len(sel)} nodes finished; tables: {out}/cifar10_eval/compare/compare.md, "
          f"{out}/cifar100_eval/compare/compare.md", file=sys.stderr)
    return 0


def run_node(node: Node, extra: list[str], nproc: int) -> int:
    """One node here, ``extra`` appended where it takes options (``--run-node``): its commands one after the other,
    the last one exec'd so that a signal reaches it (a preempted trainer checkpoints and exits 75)."""
    cmds = local_cmds(replace(node, cmds=node.with_extra(extra)), nproc)
    env = {**os.environ, **node.env}
    for cmd in cmds[:-1]:
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            return rc
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmds[-1][0], cmds[-1], env)
    return 0  # not reached
