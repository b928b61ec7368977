"""The shared run engine: resume equality, preemption, non-finite losses, config checks, logs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oe_core.cli_config import parse_config
from oe_core.errors import ConfigError, NonFiniteLossError, OEError, Preempted
from oe_core.run import Engine, load_checkpoint
from tests.engine_toy import ToyConfig, ToyTask

TOY = str(Path(__file__).with_name("engine_toy.py"))


def run(out, *args):
    cfg = parse_config(ToyConfig, ["--out", str(out), "--no-progress", "--num-workers", "0", *args])
    return Engine(ToyTask(cfg)).run()


def weights(out):
    return load_checkpoint(out)["model"]


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_run_writes_config_metrics_and_checkpoint(tmp_path):
    row = run(tmp_path / "r")
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "metrics.csv", "metrics.json", "checkpoint.pt", "checkpoint.prev.pt"} <= files
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["epochs"] == 3 and cfg["lr"] == 0.1
    rows = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1] == row and "test_error" in row and "train_loss" in row
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    ck = load_checkpoint(tmp_path / "r")
    assert ck["kind"] == "toy" and ck["position"] == {"epoch": 3, "step": 0, "global_step": 18}
    assert ck["meta"]["versions"]["torch"] == torch.__version__
    assert (ck["meta"]["kind"], ck["meta"]["epoch"], ck["meta"]["step"]) == ("toy", 3, 18)   # the header's position





def test_preempted_mid_epoch_resumes_bitwise(tmp_path):
    run(tmp_path / "full")
    with pytest.raises(Preempted):
        run(tmp_path / "cut", "--signal-at", "8")
    ck = load_checkpoint(tmp_path / "cut")
    assert ck["position"] == {"epoch": 1, "step": 3, "global_step": 9}
    run(tmp_path / "cut", "--signal-at", "8")  # same command again: resumes (signal step already past)
    assert_same_weights(tmp_path / "full", tmp_path / "cut")
    rows = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["train_loss"] for r in rows] == pytest.approx([r["train_loss"] for r in full], rel=1e-12)


def record_saves(monkeypatch) -> list[tuple[int, int, int]]:
    """Make the engine append (epoch, step, global_step) to the returned list at every checkpoint it writes."""
    saves: list[tuple[int, int, int]] = []
    save = Engine._save

    def recording(self, model, optimizer, scheduler, epoch, step, global_step, partial):
        saves.append((epoch, step, global_step))
        return save(self, model, optimizer, scheduler, epoch, step, global_step, partial)

    monkeypatch.setattr(Engine, "_save", recording)
    return saves


@pytest.mark.parametrize("every, mid_epoch", [("0", []), ("4", [(0, 4, 4), (1, 2, 8)])])
def test_checkpoints_are_written_every_n_steps_and_at_each_epoch_end_only(tmp_path, monkeypatch, every, mid_epoch):
    """6 steps an epoch, 2 epochs: a checkpoint at each epoch end, and every ``--ckpt-every`` global steps inside
    an epoch; global step 12 is an epoch's last, whose checkpoint is the epoch end's (not a second one)."""
    saves = record_saves(monkeypatch)
    run(tmp_path / "r", "--epochs", "2", "--ckpt-every", every)
    assert saves == sorted(mid_epoch + [(1, 0, 6), (2, 0, 12)])


def test_a_preemption_at_an_epochs_last_step_finishes_the_epoch_first(tmp_path, monkeypatch):
    """SIGTERM during global step 5, the last of epoch 1: the epoch is evaluated, recorded and checkpointed at its
    end (epoch 1, step 0), then the run stops; the rerun ends equal to an uninterrupted run."""
    run(tmp_path / "full", "--epochs", "2")
    saves = record_saves(monkeypatch)
    with pytest.raises(Preempted):
        run(tmp_path / "cut", "--epochs", "2", "--signal-at", "5")
    assert saves == [(1, 0, 6)]
    assert load_checkpoint(tmp_path / "cut")["position"] == {"epoch": 1, "step": 0, "global_step": 6}
    assert [r["epoch"] for r in json.loads((tmp_path / "cut" / "metrics.json").read_text())] == [1]
    run(tmp_path / "cut", "--epochs", "2", "--signal-at", "5")
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def test_periodic_checkpoints_do_not_change_the_result(tmp_path):
    run(tmp_path / "full")
    run(tmp_path / "ck", "--ckpt-every", "4")
    assert_same_weights(tmp_path / "full", tmp_path / "ck")


def test_nonfinite_loss_stops_naming_the_step_and_keeps_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"global step 7"):
        run(tmp_path / "r", "--nan-at", "7")
    ck = load_checkpoint(tmp_path / "r")  # end of epoch 1 (6 steps) is intact
    assert ck["position"]["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in ck["model"].values())


@pytest.mark.parametrize("every", ["1", "4"])
def test_nonfinite_loss_stops_naming_its_step_whenever_it_is_read_back(tmp_path, every):
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, step 1 \(global step 7\)"):
        run(tmp_path / "r", "--nan-at", "7", "--read-every", every, "--ckpt-every", "5")
    ck = load_checkpoint(tmp_path / "r")                 # read back before the step-10 checkpoint: not written
    assert ck["position"]["global_step"] == 6


def test_losses_are_read_back_every_n_steps_with_the_per_step_sums(tmp_path, monkeypatch):
    """No host wait per step: the loss and logs are read back every --read-every steps and at each epoch's end
    (6 steps per epoch, every 4: after steps 4 and 6), and the epoch means are those of reading every step."""
    from oe_core.run.readback import StepReadback
    reads = []
    real = StepReadback.read
    monkeypatch.setattr(StepReadback, "read", lambda self: reads.append(len(self)) or real(self))
    run(tmp_path / "every4", "--read-every", "4")
    assert [n for n in reads if n] == [4, 2] * 3
    run(tmp_path / "every1", "--read-every", "1")
    rows = [json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("every4", "every1")]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time_s"} for r in rs]
    assert strip(rows[0]) == strip(rows[1])
    assert_same_weights(tmp_path / "every4", tmp_path / "every1")


def test_the_readback_keeps_order_values_and_host_logs():
    from oe_core.run.readback import StepReadback
    rb = StepReadback(2)
    rb.add(0, 0, 0, torch.tensor(1.5), {"b": torch.tensor(0.1), "host": 7, "a": torch.tensor(2.0)}, 0.1)
    assert not rb.due()
    rb.add(0, 1, 1, torch.tensor(float("nan")), {"b": torch.tensor(0.3), "host": 8, "a": torch.tensor(4.0)}, 0.05)
    assert rb.due()
    first, second = rb.read()
    assert len(rb) == 0 and rb.read() == []
    assert first.loss == 1.5 and list(first.logs) == ["b", "host", "a"] and first.logs["host"] == 7.0
    assert first.logs["b"] == float(torch.tensor(0.1))          # the float32 value, exactly
    assert second.global_step == 1 and second.lr == 0.05 and second.loss != second.loss


def test_nonfinite_loss_skip_counts_the_batch(tmp_path):
    run(tmp_path / "r", "--nan-at", "7", "--on-nonfinite", "skip")
    rows = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert rows[1]["nonfinite_skipped"] == 1 and "nonfinite_skipped" not in rows[0]


def test_resume_with_a_different_config_is_refused(tmp_path):
    run(tmp_path / "r", "--epochs", "1")
    with pytest.raises(ConfigError, match=r"lr: 0.1 -> 0.2"):
        run(tmp_path / "r", "--epochs", "1", "--lr", "0.2")
    run(tmp_path / "r", "--epochs", "1", "--lr", "0.2", "--no-resume")  # explicit start-over works


def test_wrong_kind_checkpoint_is_refused(tmp_path):
    from oe_core.errors import CheckpointError
    run(tmp_path / "r", "--epochs", "1")
    with pytest.raises(CheckpointError, match="holds a toy model, but a classifier model"):
        load_checkpoint(tmp_path / "r" / "checkpoint.pt", expect_kind="classifier")


def test_invalid_config_values(tmp_path):
    with pytest.raises(ConfigError, match="--epochs must be positive"):
        parse_config(ToyConfig, ["--epochs", "0"])
    with pytest.raises(ConfigError, match="--amp"):
        parse_config(ToyConfig, ["--amp", "fp16"])


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OEError, match="not writable"):
        run(blocker / "sub")


def _toy_cmd(out, *args):
    return [sys.executable, TOY, "--out", str(out), "--no-progress", "--num-workers", "0", *args]


def test_cli_sigterm_exits_75_and_rerun_finishes_equal(tmp_path):
    subprocess.run(_toy_cmd(tmp_path / "full"), check=True, capture_output=True)
    p = subprocess.Popen(_toy_cmd(tmp_path / "cut", "--sleep", "0.05"), stderr=subprocess.PIPE, text=True)
    ck = tmp_path / "cut" / "checkpoint.pt"
    deadline = time.time() + 60
    while not ck.exists() and time.time() < deadline:  # wait for the end of epoch 1
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 75, err
    assert "rerun the same command to resume" in err
    r = subprocess.run(_toy_cmd(tmp_path / "cut", "--sleep", "0.05"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def test_cli_bad_value_is_one_line_exit_2(tmp_path):
    r = subprocess.run(_toy_cmd(tmp_path / "r", "--epochs", "-1"), capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --epochs must be positive, got -1"


def test_unwrap_finds_the_network_inside_the_engines_wrappers():
    from oe_core.run import unwrap
    from oe_core.run.engine import _CompileFallback

    net = torch.nn.Linear(2, 2)
    assert unwrap(net) is net
    assert unwrap(_CompileFallback(net)) is net


def test_data_that_runs_out_before_the_epochs_steps_stops_the_run_naming_them(tmp_path):
    class Short(ToyTask):
        def batches(self, epoch, start_step):
            return list(super().batches(epoch, start_step))[:2]

    cfg = parse_config(ToyConfig, ["--out", str(tmp_path), "--no-progress", "--num-workers", "0"])
    with pytest.raises(OEError, match="ran out after 2 of 6 steps in epoch 1"):
        Engine(Short(cfg)).run()


def test_history_columns_in_order_of_first_appearance(tmp_path):
    """metrics.csv: every column any row has, in the order they first appear (a later row's new column last),
    floats as %.6g; metrics.json: the rows as they are."""
    from oe_core.run.history import write_history
    rows = [{"epoch": 1, "train_loss": 1 / 3, "lr": 0.1}, {"epoch": 2, "train_loss": 0.25, "test_error": 0.5,
                                                           "lr": 0.01}]
    write_history(tmp_path, rows)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["epoch,train_loss,lr,test_error", "1,0.333333,0.1,", "2,0.25,0.01,0.5"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == rows
