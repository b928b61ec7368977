"""One trainer per run folder: the run engine's exclusive lock, through real trainer processes."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oe_core.cli_config import parse_config
from oe_core.errors import NonFiniteLossError
from oe_core.run import Engine
from oe_core.lock import LOCK_NAME, RunFolderBusy, RunLock
from tests.engine_toy import ToyConfig, ToyTask

ROOT = Path(__file__).resolve().parents[1]
TOY = [sys.executable, str(ROOT / "tests" / "engine_toy.py"), "--no-progress", "--num-workers", "0"]
SLOW = ["--epochs", "500", "--sleep", "0.05"]       # runs for minutes unless stopped


def start(out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(TOY + ["--out", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def wait_for_lock(out: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until ``proc`` holds the lock (its pid is in the lock file and the lock is taken)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        f = out / LOCK_NAME
        if f.exists() and f.read_text().strip() == str(proc.pid) and is_locked(out):
            return
        time.sleep(0.05)
    raise AssertionError("the trainer never took the lock")


def is_locked(out: Path) -> bool:
    fd = os.open(out / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def second_trainer(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(TOY + ["--out", str(out), "--epochs", "1", "--lr", "0.05"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_second_trainer_on_a_busy_folder_exits_2_naming_folder_and_holder(tmp_path):
    out = tmp_path / "run"
    first = start(out, *SLOW)
    try:
        wait_for_lock(out, first)
        mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != LOCK_NAME}
        got = second_trainer(out)
        assert got.returncode == 2, got.stderr
        lines = got.stderr.strip().splitlines()
        assert len(lines) == 1, got.stderr
        assert lines[0].startswith("error: run folder") and str(out) in lines[0]
        assert f"pid {first.pid}" in lines[0]
        # the busy folder was not touched (no config.json rewritten, no checkpoint)
        assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in out.iterdir() if p.name in mtimes)
        assert first.poll() is None                         # the holder keeps running
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 75                           # preempted: checkpoint written, lock released
    assert not is_locked(out)
    again = subprocess.run(TOY + ["--out", str(out), "--epochs", "1", "--no-resume"], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert again.returncode == 0, again.stderr                # the folder is free again after SIGTERM


def test_lock_is_released_by_kill_9_and_the_stale_file_does_not_block(tmp_path):
    out = tmp_path / "run"
    first = start(out, *SLOW)
    wait_for_lock(out, first)
    first.kill()
    first.communicate(timeout=60)
    assert (out / LOCK_NAME).read_text().strip() == str(first.pid)    # stale file of a dead process
    assert not is_locked(out)
    got = subprocess.run(TOY + ["--out", str(out), *SLOW[:2], "--epochs", "1", "--no-resume"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert got.returncode == 0, got.stderr
    assert not is_locked(out)


def test_lock_is_released_when_the_run_fails(tmp_path):
    got = subprocess.run(TOY + ["--out", str(tmp_path), "--nan-at", "2"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert got.returncode == 3, got.stderr
    assert not is_locked(tmp_path)
    # in one long-lived process (a study running trainers in turn) an error must release it too
    cfg = parse_config(ToyConfig, ["--out", str(tmp_path / "b"), "--no-progress", "--nan-at", "1"])
    with pytest.raises(NonFiniteLossError):
        Engine(ToyTask(cfg)).run()
    assert not is_locked(tmp_path / "b")
    Engine(ToyTask(parse_config(ToyConfig, ["--out", str(tmp_path / "b"), "--no-progress", "--no-resume"]))).run()
    assert not is_locked(tmp_path / "b")


def test_in_process_second_engine_is_refused_while_the_lock_is_held(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunFolderBusy, match=rf"run folder '{tmp_path}' is in use .*pid {os.getpid()}"):
            Engine(ToyTask(parse_config(ToyConfig, ["--out", str(tmp_path), "--no-progress"]))).run()
        assert not (tmp_path / "config.json").exists()
    assert not is_locked(tmp_path)
