"""``python -m classifiers_oe.train``: baseline, OE fine-tuning and OE-from-scratch classifiers.

A thin :class:`~oe_core.run.Task` on the shared run engine (run folder, resume,
checkpoints, DDP through ``torchrun``, bf16, channels_last, compile).  Each step
puts the in-distribution batch and (OE modes) the outlier batch through **one**
forward pass, so BatchNorm statistics cover both, as in the reference.

Deliberate differences from the reference code:

* data order, augmentation and dropout come from seeded generators per
  (seed, epoch, step[, rank]) (see :mod:`oe_core.data.samplers` and the engine), so a run
  resumes bit-exactly; augmentation runs on uint8 batches on the device;
* outliers are drawn by :class:`~oe_core.data.samplers.OutlierBatchSampler` (block
  mode = the reference's contiguous block from a random offset per epoch) and
  every step gets a full outlier batch, as in the reference's ``zip``;
* the CSV's ``train_loss`` is the mean loss of the epoch's steps (the reference
  logs an exponential moving average, ``0.8 * avg + 0.2 * loss``, of the step
  losses); ``test_loss`` is the mean over test images (the reference averages
  per-batch means, over batches of 200 in ``baseline.py`` and of 128 in
  ``oe_tune.py``/``oe_scratch.py``, whose ``--test_bs`` is unused);
* with augmentation on, a W-process run draws its crops/flips per rank, so it is
  statistically but not bitwise equal to a one-process run (without
  augmentation, dropout and BatchNorm -- or with SyncBatchNorm on GPUs -- it is
  equal up to float rounding).
"""
from __future__ import annotations

import sys
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from oe_core.cli_config import parse_config
from oe_core.data import dataset_info
from oe_core.data.transforms import random_crop_flip
from oe_core.errors import CheckpointError, ConfigError, cli_main
from oe_core.run import Engine, StepContext, Task
from oe_core.run.release import ModelCard
from oe_core.run.training_data import first_image_shape, open_training_data

from .card import model_card
from .config import KIND, ClassifierConfig
from .inputs import model_input
from .losses import EnergyOELoss, OELoss
from .models import build_model
from .schedule import reference_cosine_scheduler
from .weights import load_into, read_weights

# Architecture fields a fine-tuned run must share with the model it starts from.
ARCH_FIELDS = ("dataset", "arch", "depth", "widen_factor", "norm", "image_size")


class ClassifierTask(Task):
    """Cross-entropy (baseline) or OE training of a WRN/AllConv classifier."""

    kind = KIND

    def setup(self, ctx: StepContext) -> None:
        cfg = self.cfg
        if cfg.sync_bn and ctx.dist.enabled and ctx.device.type == "cpu":
            raise ConfigError("--sync-bn needs GPUs (PyTorch's SyncBatchNorm has no CPU support); "
                              "use --no-sync-bn or --norm none on CPU")
        entry = dataset_info(cfg.dataset)
        if entry.role != "id" or not entry.num_classes:
            raise ConfigError(f"--dataset {cfg.dataset!r} is not a labelled in-distribution set (role "
                              f"{entry.role!r}); pick one of role 'id' (see `python -m oe_core.data`)")
        self.num_classes = entry.num_classes
        self.in_normalized = entry.normalize
        self.sync_bn = cfg.sync_bn and ctx.dist.enabled
        data = open_training_data(cfg, ctx, image_shape=self._image_shape)
        self.train_set, self.stream, self.test_loader = data.train_set, data.stream, data.test_loader
        if cfg.uses_outliers:
            self.criterion = (OELoss(cfg.lam) if cfg.oe_loss == "oe"
                              else EnergyOELoss(cfg.m_in, cfg.m_out, cfg.lam))
            self.out_normalized = dataset_info(cfg.outliers).normalize

    def _image_shape(self, train_set) -> tuple:
        shape = first_image_shape(train_set)
        if self.cfg.arch == "allconv" and shape[-2:] != (32, 32):
            raise ConfigError(f"--arch allconv needs 32x32 images; {self.cfg.dataset!r} has {shape[-2:]}")
        return shape

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        model = build_model(cfg.arch, self.num_classes, cfg.depth, cfg.widen_factor, cfg.dropout, cfg.norm)
        if cfg.mode == "oe_tune":
            state_dict, init_cfg = read_weights(cfg.init)
            if init_cfg is not None:
                diff = [f"{f}: {getattr(init_cfg, f)!r} vs {getattr(cfg, f)!r}" for f in ARCH_FIELDS
                        if getattr(init_cfg, f) != getattr(cfg, f)]
                if diff:
                    raise CheckpointError(f"--init {cfg.init!r} was trained with other settings "
                                          f"({'; '.join(diff)})")
            load_into(model, state_dict, cfg.init)
        if self.sync_bn:  # BatchNorm statistics over the whole joint batch of all processes
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)

    def build_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int):
        return reference_cosine_scheduler(optimizer, total_steps, self.cfg.lr, self.cfg.lr_min)

    def steps_per_epoch(self) -> int:
        return len(self.stream)

    def batches(self, epoch: int, start_step: int) -> Iterable:
        return self.stream.epoch(epoch, start_step)

    def train_step(self, model: nn.Module, batch, ctx: StepContext) -> tuple[torch.Tensor, dict]:
        (x_in, y), outliers = batch
        x_in, y = ctx.to_device(x_in), ctx.to_device(y)
        gen = ctx.generator("augment", ctx.dist.rank)
        if self.cfg.augment:
            x_in = random_crop_flip(x_in, padding=4, generator=gen)
        inputs = model_input(x_in, self.in_normalized)
        if outliers is not None:
            x_out = ctx.to_device(outliers[0])
            if self.cfg.augment:
                x_out = random_crop_flip(x_out, padding=4, generator=gen)
            inputs = torch.cat([inputs, model_input(x_out, self.out_normalized)])
        logits = model(inputs.contiguous(memory_format=ctx.memory_format))
        n = len(y)
        if outliers is None:
            return F.cross_entropy(logits.float(), y), {}
        return self.criterion(logits[:n], y, logits[n:]), {}

    def evaluate(self, model: nn.Module, ctx: StepContext) -> dict:
        loss_sum, wrong, count = 0.0, 0, 0
        for x, y in self.test_loader:
            x, y = ctx.to_device(x), ctx.to_device(y)
            with ctx.autocast():
                logits = model(model_input(x, self.in_normalized).contiguous(memory_format=ctx.memory_format))
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            wrong += int((logits.argmax(1) != y).sum())
            count += len(y)
        return {"test_loss": loss_sum / count, "test_error": 100.0 * wrong / count}

    def model_card(self, state: dict) -> ModelCard:
        return model_card(state)

    def summary(self, row: dict) -> str:
        return (f"epoch {row['epoch']:3d} | {row['time_s']:7.1f}s | train loss {row['train_loss']:.4f} | "
                f"test loss {row['test_loss']:.4f} | test error {row['test_error']:.2f}%")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(ClassifierConfig, argv, prog="python -m classifiers_oe.train")
    row = Engine(ClassifierTask(cfg)).run()
    if "test_error" in row:
        print(f"final test accuracy: {100.0 - row['test_error']:.2f}% ({cfg.dataset}, {cfg.out})")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
