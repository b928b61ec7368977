"""The density OE wiring: the trainer's loss is the OE margin ranking loss of the right bpds, margin, unit and
weight, and a short fine-tune moves the outliers' bits/dim away from the in-distribution ones."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import density_oe.train as density_train
from density_oe.config import DensityConfig
from density_oe.pixelcnn.dmol import log_prob
from density_oe.losses import OEMarginLoss, oe_density_loss
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.weights import load_density_model
from oe_core.cli_config import parse_config
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.run import StepContext, dist_info_from_env

SIZE = 8
DIMS = 3 * SIZE * SIZE
MODEL = ["--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix", "2"]
COMMON = ["--dataset", "mini-id", "--image-size", str(SIZE), *MODEL, "--num-workers", "0", "--no-progress",
          "--device", "cpu", "--eval-images", "16", "--test-batch-size", "16"]


def oe_task(tmp_path: Path, *extra: str) -> tuple[density_train.DensityTask, StepContext]:
    cfg = parse_config(DensityConfig, COMMON + ["--mode", "oe_tune", "--init", str(tmp_path / "unused"),
                                              "--outliers", "mini-outliers", "--batch-size", "6",
                                              "--oe-batch-size", "5", "--out", str(tmp_path / "run"), *extra])
    task = density_train.DensityTask(cfg)
    ctx = StepContext(cfg=cfg, device=torch.device("cpu"), dist=dist_info_from_env())
    task.setup(ctx)
    return task, ctx


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """One real batch of the trainer's stream and one model (eval mode: no dropout, so outputs repeat)."""
    task, ctx = oe_task(tmp_path_factory.mktemp("fixed"))
    batch = next(iter(task.batches(0, 0)))
    torch.manual_seed(0)
    model = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=2)).eval()
    (x_in, _), (x_out, *_) = batch
    x = torch.cat([to_unit_range(x_in), to_unit_range(x_out)])
    with torch.no_grad():
        bpd = -log_prob(model(x), x).double() / (DIMS * math.log(2))  # bits/dim from the same outputs
    return batch, model, bpd[:6], bpd[6:]


def hinge_loss(bpd_in, bpd_out, margin: float, lam: float) -> float:
    """The paper's loss written out: mean_i bpd_in + lam * mean_{i,j} max(0, margin + bpd_in_i - bpd_out_j)."""
    pairs = [max(0.0, margin + float(a) - float(b)) for a in bpd_in for b in bpd_out]
    return float(bpd_in.mean()) + lam * sum(pairs) / len(pairs)


def step_loss(tmp_path, fixed, *options: str) -> tuple[float, dict]:
    batch, model = fixed[:2]
    task, ctx = oe_task(tmp_path, *options)
    with torch.no_grad():
        loss, logs = task.train_step(model, batch, ctx)
    return float(loss), logs


def test_train_step_returns_the_oe_loss_of_the_in_and_outlier_bpds(tmp_path, fixed):
    batch, model, bpd_in, bpd_out = fixed
    assert len(batch[0][0]) == 6 and len(batch[1][0]) == 5
    loss, logs = step_loss(tmp_path, fixed)
    assert loss == pytest.approx(float(oe_density_loss(bpd_in.float(), bpd_out.float(), 1.0, 1.0)), rel=1e-6)
    assert loss == pytest.approx(hinge_loss(bpd_in, bpd_out, 1.0, 1.0), rel=1e-6)
    assert logs["train_bpd"] == pytest.approx(float(bpd_in.mean()), rel=1e-6)
    assert logs["outlier_bpd"] == pytest.approx(float(bpd_out.mean()), rel=1e-6)
    # the hinge's direction matters: the swapped loss is a different number on this batch
    assert abs(hinge_loss(bpd_out, bpd_in, 1.0, 1.0) - loss) > 1e-3


@pytest.mark.parametrize("options, margin_bits, lam", [
    (["--oe-margin", "0"], 0.0, 1.0),                                    # some pairs inside the margin, some not
    (["--oe-margin", "0.05"], 0.05, 1.0),
    (["--oe-margin", "2.5"], 2.5, 1.0),
    (["--oe-margin", "0.05", "--oe-margin-unit", "nats_per_dim"], 0.05 / math.log(2), 1.0),
    (["--oe-margin", "200", "--oe-margin-unit", "bits_per_image"], 200 / DIMS, 1.0),
    (["--oe-margin", "1024", "--oe-margin-unit", "nats_per_image"], 1024 / (DIMS * math.log(2)), 1.0),
    (["--lam", "0"], 1.0, 0.0),
    (["--lam", "2.5"], 1.0, 2.5),
    (["--oe-margin", "0", "--lam", "0.3"], 0.0, 0.3),
])
def test_margin_unit_and_weight_change_the_loss_as_the_formula_says(tmp_path, fixed, options, margin_bits, lam):
    bpd_in, bpd_out = fixed[2:]
    loss, _ = step_loss(tmp_path, fixed, *options)
    assert loss == pytest.approx(hinge_loss(bpd_in, bpd_out, margin_bits, lam), rel=1e-6, abs=1e-9)
    default = hinge_loss(bpd_in, bpd_out, 1.0, 1.0)
    assert abs(loss - default) > 1e-4                                   # an ignored option would give this


def test_zero_margin_hinge_is_partly_active_on_the_fixed_batch(fixed):
    """The margin-0 case above only tells the hinge's kink apart if some pairs are on each side of it."""
    bpd_in, bpd_out = fixed[2:]
    diff = bpd_in[:, None] - bpd_out[None, :]
    assert (diff > 0).any() and (diff < 0).any()


def gap(run: Path) -> float:
    """Mean bits/dim of outliers minus that of in-distribution test images under the run's scored weights."""
    model, _ = load_density_model(run)
    test = get_dataset("mini-id", "test", size=SIZE)
    out = get_dataset("mini-outliers", size=SIZE)
    x_in = to_unit_range(torch.stack([test[i][0] for i in range(64)]))
    x_out = to_unit_range(torch.stack([out[len(out) - 1 - i][0] for i in range(64)]))  # not the first blocks
    with torch.no_grad():
        return float(-log_prob(model(x_out), x_out).mean() + log_prob(model(x_in), x_in).mean()) / (
            DIMS * math.log(2))


def test_short_oe_fine_tune_widens_the_outlier_gap_and_a_swapped_loss_narrows_it(tmp_path, monkeypatch):
    """60 OE steps without dropout (a tiny model's dropout noise swamps a few steps' effect).  Sized on seeds 0-9:
    the OE loss widened the held-out gap by 0.83-2.79 bits/dim, the swapped loss narrowed it by 0.25-0.70."""
    model = ["--dropout", "0", "--batch-size", "16", "--epochs", "1"]
    base = tmp_path / "base"
    assert density_train.main(COMMON + model + ["--limit-steps", "8", "--lr", "3e-3", "--ema-decay", "0",
                                                "--out", str(base)]) == 0
    tune = COMMON + model + ["--mode", "oe_tune", "--init", str(base), "--outliers", "mini-outliers",
                             "--limit-steps", "60", "--lr", "1e-3", "--outlier-sampling", "shuffle"]
    assert density_train.main(tune + ["--out", str(tmp_path / "oe")]) == 0
    monkeypatch.setattr(OEMarginLoss, "forward",
                        lambda self, bpd_in, bpd_out: oe_density_loss(bpd_out, bpd_in, self.margin, self.lam))
    assert density_train.main(tune + ["--out", str(tmp_path / "swapped")]) == 0
    before, after, swapped = gap(base), gap(tmp_path / "oe"), gap(tmp_path / "swapped")
    assert after > before + 0.5, (before, after, swapped)
    assert swapped < before - 0.1, (before, after, swapped)
