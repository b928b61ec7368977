"""A real single-node SLURM cluster on localhost, for the tests: munge + slurmctld + slurmd, all in a temp folder.

``SlurmCluster(base).start()`` writes a munge key and a ``slurm.conf`` (``ProctrackType=proctrack/linuxproc``,
``TaskPlugin=task/none``, ``SelectType=select/cons_tres``, one node ``localhost`` with this machine's CPUs and
memory, free ports, state and spool folders under ``base``), starts ``munged`` (its own socket), ``slurmctld`` and
``slurmd`` and waits until the node is idle.  ``env()`` is the environment for the client commands (``SLURM_CONF``);
``stop()`` ends the three daemons it started.  Needs root (the daemons run as root, ``SlurmUser=root``) and
Debian's ``slurm-wlm`` and ``munge``: :func:`unavailable` says why a cluster cannot start here, or ``None``.

``OE_REQUIRE_SLURM=1`` (set by ``.ci/run``) turns "cannot start" into a test failure instead of a skip.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{name}", os.X_OK)),
                                      None)


def unavailable() -> str | None:
    """Why no cluster can start on this machine (one line), or ``None`` when it can."""
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if missing:
        return (f"SLURM/munge not installed (missing: {', '.join(missing)}); "
                "apt-get install -y slurm-wlm munge (as root)")
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root (SlurmUser=root); not root here"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(int(line.split()[1]) // 1024 - 1024, 512)
    return 2048


class SlurmCluster:
    def __init__(self, base: str | Path, cpus: int | None = None):
        self.base = Path(base)
        self.cpus = cpus or os.cpu_count() or 1
        self._popen: dict[str, subprocess.Popen] = {}
        self.conf = self.base / "slurm.conf"
        self.socket = self.base / "munge" / "munge.socket"

    def env(self, **extra: str) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf), **extra}

    def _log(self, name: str) -> str:
        path = self.base / "log" / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        b = self.base
        for d in ("munge", "log", "state", "spool", "run"):
            (b / d).mkdir(parents=True, exist_ok=True)
        os.chmod(b / "munge", 0o700)
        key = b / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        ctld_port, d_port = _free_ports(2)
        self.conf.write_text("\n".join([
            "ClusterName=oetest",
            "SlurmctldHost=localhost",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            f"AuthInfo=socket={self.socket}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"StateSaveLocation={b / 'state'}",
            f"SlurmdSpoolDir={b / 'spool'}",
            f"SlurmctldPidFile={b / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={b / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={b / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={b / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=1024",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobRequeue=1",
            "MinJobAge=3600",
            "KillWait=5",
            "SchedulerParameters=defer_batch=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={_mem_mb()} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            ""]))
        env = self.env()
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--socket={self.socket}",
                               f"--key-file={key}", f"--pid-file={b / 'run' / 'munged.pid'}",
                               f"--log-file={b / 'log' / 'munged.log'}", f"--seed-file={b / 'munge' / 'seed'}"],
                    env)
        self._wait(lambda: self.socket.exists(), 15, "munged did not create its socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)], env)
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)], env)
        self._wait(self._node_idle, timeout, "the node did not come up idle")
        return self

    def _spawn(self, name: str, argv: list, env: dict) -> None:
        out = open(self.base / "log" / f"{name}.stdout", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._popen[name] = proc

    def _node_idle(self) -> bool:
        for name, proc in self._popen.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{self._log(name)}\n"
                                   f"{(self.base / 'log' / (name + '.stdout')).read_text(errors='replace')[-2000:]}")
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip().startswith("idle")

    def _wait(self, ok, timeout: float, what: str) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if ok():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what} within {timeout:.0f} s\nslurmctld: {self._log('slurmctld')}\n"
                           f"slurmd: {self._log('slurmd')}")

    def stop(self) -> None:
        """Cancel what is still queued, then end the daemons (slurmd, slurmctld, then munged)."""
        if self._popen.get("slurmctld") is not None and self._popen["slurmctld"].poll() is None:
            try:
                q = subprocess.run(["squeue", "-h", "-o", "%i"], env=self.env(), capture_output=True, text=True,
                                   timeout=30)
                ids = q.stdout.split()
                if ids:
                    subprocess.run(["scancel", *ids], env=self.env(), capture_output=True, timeout=30)
                    end = time.time() + 20
                    while time.time() < end and subprocess.run(
                            ["squeue", "-h", "-o", "%i"], env=self.env(), capture_output=True, text=True,
                            timeout=30).stdout.strip():
                        time.sleep(0.5)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._popen.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
