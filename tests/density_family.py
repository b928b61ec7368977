"""Checks every density family passes through the shared trainer (used by the per-family test files)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from density_oe.config import DensityConfig
from density_oe.train import DensityTask, main
from oe_core.cli_config import parse_config
from oe_core.data.transforms import to_unit_range
from oe_core.errors import Preempted
from oe_core.run import Engine, StepContext, load_checkpoint
from oe_core.run.device import DistInfo
from tests.faults import preempting
from tests.test_density_train import history

PreemptedAt = preempting(DensityTask)


def check_oe_loss_is_the_hand_formula(oe_argv: list[str], n_in: int = 3, n_out: int = 5) -> torch.nn.Module:
    """One OE step's loss equals ``mean bpd_in + mean_{i,j} max(0, 1 + bpd_in_i - bpd_out_j)`` (margin 1 bit/dim,
    lam 1) recomputed from ``model.log_prob`` with the same random draws; returns the model after ``backward``."""
    cfg = parse_config(DensityConfig, oe_argv)
    task = DensityTask(cfg)
    ctx = StepContext(cfg, torch.device("cpu"), DistInfo())
    task.setup(ctx)
    model = task.build_model()
    (x_in, y_in), (x_out, y_out) = next(iter(task.batches(0, 0)))
    torch.manual_seed(3)
    loss, logs = task.train_step(model, ((x_in, y_in), (x_out, y_out)), ctx)
    torch.manual_seed(3)  # the same random draws: one draw for the concatenated batch
    x = to_unit_range(torch.cat([x_in, x_out]))
    with torch.no_grad():
        bpd = (-model.log_prob(x) / (x[0].numel() * math.log(2))).tolist()
    b_in, b_out = bpd[:n_in], bpd[n_in:]
    hinge = sum(max(0.0, 1.0 + i - o) for i in b_in for o in b_out) / (n_in * n_out)
    assert loss.item() == pytest.approx(sum(b_in) / n_in + hinge, rel=1e-5)
    assert logs["outlier_bpd"] == pytest.approx(sum(b_out) / n_out, rel=1e-5)
    loss.backward()
    return model


def check_resumed_run_is_bitwise_equal(args: list[str], tmp_path: Path) -> None:
    """A run preempted at the first step of epoch 2 and resumed ends with the weights, EMA and history of a
    straight run."""
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    cfg = parse_config(DensityConfig, args + ["--out", str(tmp_path / "resumed")])
    with pytest.raises(Preempted):
        Engine(PreemptedAt(cfg, at=2)).run()                         # first step of epoch 2
    assert load_checkpoint(tmp_path / "resumed")["position"]["epoch"] >= 1
    assert main(args + ["--out", str(tmp_path / "resumed")]) == 0    # no second data-dependent init
    got = load_checkpoint(tmp_path / "resumed", expect_kind="density")
    expected = load_checkpoint(tmp_path / "straight", expect_kind="density")
    for part in ("model", "eval_model"):
        for k in expected[part]:
            assert torch.equal(got[part][k], expected[part][k]), (part, k)
    assert history(tmp_path / "resumed") == history(tmp_path / "straight")
