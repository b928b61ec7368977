"""Chaos: a tiny run of each trainer SIGKILLed at seeded random points (at a step, right after an optimizer update,
halfway through a checkpoint write, in the middle of the checkpoint rotation), restarted with the same command after
each kill, ends bit for bit where an uninterrupted run ends: model, EMA, optimizer, scheduler, task and RNG states,
position and metric history.  The kill hooks are in ``tests/faults.py``.
"""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from classifiers_oe import train as classifier_train
from density_oe import train as density_train
from oe_core.errors import CheckpointError
from oe_core.run import load_checkpoint
from oe_core.run.checkpoint import LATEST, NEXT, PREVIOUS
from tests.faults import KILL_KINDS, Kill, assert_bit_equal, kill_plan, run_killed

EPOCHS, SPE, EVERY = 2, 6, 2
TOTAL = EPOCHS * SPE
# where the engine checkpoints: every EVERY steps within an epoch, and at each epoch's end
CHECKPOINTS = sorted({g for g in range(EVERY, TOTAL + 1, EVERY)} | {e * SPE for e in range(1, EPOCHS + 1)})
RUN = ["--dataset", "mini-id", "--image-size", "8", "--num-workers", "0", "--no-progress", "--device", "cpu",
       "--epochs", str(EPOCHS), "--limit-steps", str(SPE), "--ckpt-every", str(EVERY)]
# dropout and the EMA on: every source of randomness and every piece of state is exercised
DENSITY = RUN + ["--nr-resnet", "1", "--nr-filters", "4", "--nr-logistic-mix", "1", "--batch-size", "4",
                 "--eval-images", "8", "--test-batch-size", "8", "--lr", "2e-3", "--ema-decay", "0.8"]
CLASSIFIER = RUN + ["--depth", "10", "--widen-factor", "1", "--batch-size", "8", "--mode", "oe_scratch",
                    "--outliers", "gaussian", "--oe-batch-size", "8", "--dropout", "0.3", "--test-batch-size", "16"]
TRAINERS = {"density": (density_train.main, density_train.DensityTask, DENSITY),
            "classifier": (classifier_train.main, classifier_train.ClassifierTask, CLASSIFIER)}


def final_state(out: Path) -> dict:
    """The final checkpoint, without what legitimately differs between two runs (folder, timings)."""
    state = load_checkpoint(out)
    for key in ("path", "meta", "sha256", "config"):
        state.pop(key)
    state["partial"].pop("seconds")
    state["history"] = [{k: v for k, v in row.items() if k != "time_s"} for row in state["history"]]
    return state


def check_the_kill_left_its_mark(out: Path, kill: Kill) -> None:
    """The kill happened where it was meant to: a half-written staged checkpoint, or no checkpoint.pt."""
    staged = list(out.glob(f".{NEXT}.*.tmp"))
    if kill.kind == "write":
        assert len(staged) == 1 and staged[0].stat().st_size > 0, staged
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(staged[0])
    if kill.kind == "rotate":
        assert not (out / LATEST).exists() and (out / PREVIOUS).exists() and (out / NEXT).exists()


@pytest.mark.slow
@pytest.mark.parametrize("trainer, seed", [("density", 30), ("classifier", 32)])
def test_random_sigkills_then_restarts_end_bit_equal_to_an_uninterrupted_run(tmp_path, trainer, seed):
    main, task_cls, args = TRAINERS[trainer]
    assert run_killed(main, task_cls, args + ["--out", str(tmp_path / "straight")]) == 0
    plan = kill_plan(seed, TOTAL, CHECKPOINTS, n_steps=6, n_writes=2, n_rotates=1)
    assert {k.kind for k in plan} == set(KILL_KINDS)
    out = tmp_path / "chaos"
    for kill in plan:
        code = run_killed(main, task_cls, args + ["--out", str(out)], kill)
        assert code == -signal.SIGKILL, f"{kill} was not reached (exit code {code})"
        check_the_kill_left_its_mark(out, kill)
    assert run_killed(main, task_cls, args + ["--out", str(out)]) == 0
    assert not list(out.glob(".*.tmp"))
    got, expected = final_state(out), final_state(tmp_path / "straight")
    assert expected["position"]["global_step"] == TOTAL
    assert_bit_equal(got, expected)
