"""The learning-rate schedule as a real run builds it: each trainer, 2 epochs of 8x8 mini data, the learning rate
of every optimizer step recorded by a hook on the run's own optimizer, against the reference formula with the run's
own total step count.

``test_classifiers_train.py`` checks a scheduler that a test builds by hand; these check the engine's wiring too:
the total step count it hands the scheduler, when it steps it, and the epoch boundary.
"""
from __future__ import annotations

import itertools
import math

import pytest

from classifiers_oe import train as classifier_train
from density_oe import train as density_train
from oe_core.run import load_checkpoint

EPOCHS, SPE = 2, 3    # SPE: --limit-steps, so the epoch boundary falls between global steps 2 and 3

CLASSIFIER = ["--dataset", "mini-id", "--image-size", "8", "--depth", "10", "--widen-factor", "1",
              "--batch-size", "8", "--num-workers", "0", "--no-progress", "--device", "cpu",
              "--epochs", str(EPOCHS), "--limit-steps", str(SPE), "--lr", "0.1"]
DENSITY = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "4",
           "--nr-logistic-mix", "1", "--num-workers", "0", "--no-progress", "--device", "cpu", "--batch-size", "4",
           "--eval-images", "8", "--test-batch-size", "8", "--epochs", str(EPOCHS), "--limit-steps", str(SPE),
           "--lr", "1e-3"]


def record_lrs(monkeypatch, task_cls) -> list[float]:
    """Make every optimizer the trainer builds append its learning rate to the returned list at each step."""
    lrs: list[float] = []
    build = task_cls.build_optimizer

    def build_recording(self, model):
        opt = build(self, model)
        opt.register_step_pre_hook(lambda o, args, kwargs: lrs.append(o.param_groups[0]["lr"]))
        return opt

    monkeypatch.setattr(task_cls, "build_optimizer", build_recording)
    return lrs


def run_steps(out) -> int:
    """The run's own total step count (its final checkpoint's position)."""
    return load_checkpoint(out)["position"]["global_step"]


def assert_never_rises(lrs: list[float]) -> None:
    rises = [(t, a, b) for t, (a, b) in enumerate(itertools.pairwise(lrs)) if b > a]
    assert not rises, f"the learning rate rises at steps {rises}"


def test_a_classifier_run_follows_the_reference_per_step_cosine(tmp_path, monkeypatch):
    lrs = record_lrs(monkeypatch, classifier_train.ClassifierTask)
    assert classifier_train.main(CLASSIFIER + ["--out", str(tmp_path)]) == 0
    total = run_steps(tmp_path)
    assert total == len(lrs) == EPOCHS * SPE
    lr, lr_min = 0.1, 1e-6   # --lr, and the default --lr-min (the reference's 1e-6, absolute)
    # the reference steps its LambdaLR *before* each optimizer step: step t (0-based) uses the cosine at t + 1,
    # so the curve starts at lr (t = 0) and its last step uses lr_min
    expected = [lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * (t + 1) / total)) for t in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    assert lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(0.0)) == lr and max(lrs) < lr
    assert lrs[-1] == pytest.approx(lr_min, rel=1e-9)
    assert_never_rises(lrs)


@pytest.mark.parametrize("decay", [0.9, 0.999995])   # a visible decay, and the TF recipe's default
def test_a_density_run_decays_the_learning_rate_every_step(tmp_path, monkeypatch, decay):
    lrs = record_lrs(monkeypatch, density_train.DensityTask)
    args = DENSITY + (["--lr-decay", str(decay)] if decay != 0.999995 else [])
    assert density_train.main(args + ["--out", str(tmp_path)]) == 0
    total = run_steps(tmp_path)
    assert total == len(lrs) == EPOCHS * SPE
    # TF PixelCNN++ recipe: lr multiplied by lr_decay after every step, across epoch boundaries
    expected = [1e-3 * decay ** t for t in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    assert lrs[0] == 1e-3
    assert_never_rises(lrs)


def test_a_density_run_with_warmup_rises_linearly_then_decays(tmp_path, monkeypatch):
    lrs = record_lrs(monkeypatch, density_train.DensityTask)
    warmup, decay = 4, 0.9
    args = DENSITY + ["--warmup-steps", str(warmup), "--lr-decay", str(decay), "--out", str(tmp_path)]
    assert density_train.main(args) == 0
    total = run_steps(tmp_path)
    assert total == len(lrs) == EPOCHS * SPE
    # openai Glow's per-step linear warm-up (step t uses (t + 1) / warmup of the lr), times the per-step decay
    expected = [1e-3 * min(1.0, (t + 1) / warmup) * decay ** t for t in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    assert lrs[0] == pytest.approx(1e-3 / warmup, rel=1e-12)
    assert_never_rises(lrs[warmup - 1:])


def test_one_step_epochs_run_and_an_epoch_without_steps_is_refused(tmp_path):
    from oe_core.errors import ConfigError
    from tests.test_run_engine import run
    run(tmp_path / "one", "--limit-steps", "1", "--epochs", "2")
    assert run_steps(tmp_path / "one") == 2
    with pytest.raises(ConfigError, match="^the training set yields no batches"):
        run(tmp_path / "none", "--n", "8", "--batch-size", "16")
