"""Fault injection on the run engine: kill -9, corrupt checkpoints, failing writes."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from oe_core.errors import CheckpointError, Preempted
from oe_core.run import checkpoint as ckmod
from oe_core.run import load_checkpoint
from tests.test_run_engine import _toy_cmd, assert_same_weights, run


def _kill_when(out: Path, n_checkpoints: int, extra_delay: float) -> None:
    """Start a slow toy run, SIGKILL it once it wrote ``n_checkpoints`` checkpoints (+ a delay)."""
    p = subprocess.Popen(_toy_cmd(out, "--sleep", "0.03", "--ckpt-every", "2"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    seen, last = 0, None
    deadline = time.time() + 60
    while seen < n_checkpoints and time.time() < deadline and p.poll() is None:
        try:  # the run rotates checkpoint.pt away and back in; between the two the file is absent
            m = (out / "checkpoint.pt").stat().st_mtime_ns
        except FileNotFoundError:
            m = last
        if m != last:
            seen, last = seen + 1, m
        time.sleep(0.005)
    time.sleep(extra_delay)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)


@pytest.mark.parametrize("n_ck,delay", [(1, 0.0), (3, 0.01), (5, 0.045)])
def test_kill9_then_rerun_equals_uninterrupted(tmp_path, n_ck, delay):
    run(tmp_path / "full", "--ckpt-every", "2")
    _kill_when(tmp_path / "cut", n_ck, delay)
    before = load_checkpoint(tmp_path / "cut")["position"]["global_step"]
    assert before < 18  # it really was cut short
    r = subprocess.run(_toy_cmd(tmp_path / "cut", "--sleep", "0.03", "--ckpt-every", "2"), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_same_weights(tmp_path / "full", tmp_path / "cut")
    assert not list((tmp_path / "cut").glob(".*.tmp"))  # temp files of a write cut by the kill are cleaned up


def test_truncated_latest_checkpoint_falls_back_to_previous(tmp_path):
    run(tmp_path / "full")
    with pytest.raises(Preempted):
        run(tmp_path / "cut", "--signal-at", "13")
    ck = tmp_path / "cut" / "checkpoint.pt"
    prev_step = load_checkpoint(tmp_path / "cut" / "checkpoint.prev.pt")["position"]["global_step"]
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])  # the node died mid-copy
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(ck)
    with pytest.warns(UserWarning, match="falling back to the previous checkpoint"):
        state = load_checkpoint(tmp_path / "cut")
    assert state["position"]["global_step"] == prev_step == 12
    with pytest.warns(UserWarning), pytest.raises(Preempted):
        run(tmp_path / "cut", "--signal-at", "13")  # resumes from the previous one; the signal step comes again
    assert (tmp_path / "cut" / "checkpoint.corrupt.pt").exists()  # set aside, never promoted to .prev
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.prev.pt")["position"]["global_step"] == 12
    run(tmp_path / "cut", "--signal-at", "13")
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def test_bitflip_in_checkpoint_fails_checksum(tmp_path):
    run(tmp_path / "r", "--epochs", "1")
    ck = tmp_path / "r" / "checkpoint.pt"
    data = bytearray(ck.read_bytes())
    blob_start = data.index(b"\n", len(ckmod.MAGIC)) + 1
    data[(blob_start + len(data)) // 2] ^= 0xFF  # a bit in the middle of the blob; the header is intact
    ck.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_checkpoint(ck)


def test_not_a_checkpoint_is_named(tmp_path):
    p = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, p)
    with pytest.raises(CheckpointError, match="is not an OE-suite checkpoint"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failing_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    run(tmp_path / "r", "--epochs", "2")  # two saves: latest and previous
    good = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    prev = (tmp_path / "r" / "checkpoint.prev.pt").read_bytes()

    def full_disk(fd, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("oe_core.atomic.os.fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ckmod.save_checkpoint(tmp_path / "r", {"kind": "toy"}, kind="toy", step=1, epoch=1)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == good  # neither file was rotated or touched
    assert (tmp_path / "r" / "checkpoint.prev.pt").read_bytes() == prev
    assert not list((tmp_path / "r").glob(".*.tmp"))  # the temporary file was removed


def test_nan_weights_are_never_written(tmp_path):
    from oe_core.errors import NonFiniteLossError
    with pytest.raises(NonFiniteLossError, match="not finite"):
        ckmod.assert_finite_state({"w": torch.tensor([1.0, float("nan")])})
