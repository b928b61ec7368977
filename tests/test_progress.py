"""The one progress helper (:func:`oe_core.progress.progress_bar`): tools' bars stay off where stderr is not a
terminal, the training engine's epoch bars go to run logs too (cluster logs, ``benchmarks/gpu_check.py``), with
the step count (from the resumed step on) and the newest loss."""
from __future__ import annotations

import io
import re
import sys
import time

import pytest

from oe_core.cli_config import parse_config
from oe_core.errors import Preempted
from oe_core.progress import progress_bar
from oe_core.run import Engine
from tests.engine_toy import ToyConfig, ToyTask


def test_a_tool_bar_is_off_when_stderr_is_not_a_terminal(capsys):
    bar = progress_bar(iter(range(4)), "scoring", total=4)
    assert list(bar) == [0, 1, 2, 3]
    bar.set_postfix(loss="1.0")          # the engine's calls work on a bar that is off
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_bar_switched_off_writes_nothing_even_where_logs_get_bars(capsys):
    assert list(progress_bar(range(3), "x", enabled=False, terminal_only=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_fetch_bars_follow_progress_and_the_terminal(monkeypatch):
    """``fetch``'s bars are this helper's: a byte bar (with the total pooch needs) and a file bar on a terminal,
    none with ``--no-progress`` or where stderr is not a terminal."""
    from oe_core.data.fetch import _bar
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with _bar("x", True) as byte_bar, _bar("y", True, "file") as file_bar:
        assert (byte_bar.total, byte_bar.unit, file_bar.total, file_bar.unit) == (1, "B", None, "file")
    with _bar("x", False) as off:
        assert off is None
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with _bar("x", True) as not_a_terminal:
        assert not_a_terminal is None


def _slowly(items, seconds=0.12):
    for item in items:
        time.sleep(seconds)        # past tqdm's 0.1 s between refreshes, so each step is shown
        yield item


def test_a_log_bar_counts_from_its_initial_step(capsys):
    assert list(progress_bar(_slowly("ab"), "epoch 2/5", total=5, initial=2, terminal_only=False)) == ["a", "b"]
    err = capsys.readouterr().err
    assert re.search(r"epoch 2/5: +40%.*\b2/5\b", err) and re.search(r"\b4/5\b", err), err


def _run(out, *args):
    cfg = parse_config(ToyConfig, ["--out", str(out), "--num-workers", "0", *args])
    return Engine(ToyTask(cfg)).run()


def test_the_engine_shows_an_epochs_steps_and_loss_in_a_log(tmp_path, capsys):
    _run(tmp_path / "r", "--epochs", "1", "--read-every", "1", "--sleep", "0.12")
    err = capsys.readouterr().err
    assert re.search(r"epoch 1/1: .*\b[1-6]/6\b.*loss=\d", err), err
    _run(tmp_path / "q", "--epochs", "1", "--no-progress")
    assert "epoch 1/1:" not in capsys.readouterr().err


def test_a_resumed_epochs_bar_starts_at_the_step_it_resumes(tmp_path, capsys):
    with pytest.raises(Preempted):
        _run(tmp_path / "r", "--epochs", "1", "--signal-at", "2")
    capsys.readouterr()
    _run(tmp_path / "r", "--epochs", "1", "--signal-at", "2")
    assert re.search(r"epoch 1/1: +50%.*\b3/6\b", capsys.readouterr().err)
