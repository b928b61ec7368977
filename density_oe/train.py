"""``python -m density_oe.train``: train a density model (``--arch pixelcnn``, the default, ``glow`` or ``diffusion``) by
maximum likelihood (baseline) or fine-tune it with Outlier Exposure (oe_tune).

:class:`DensityTask` is a thin :class:`~oe_core.run.Task` on the shared run engine, which handles the run folder,
checkpoints, resume, DDP, bf16 autocast, channels_last and ``--compile``.  The task sees a model only through
``log_prob``, so both families share the loss, the margin units, the data stream and the evaluation weights.

* Each step: :meth:`DensityTask.train_step`.  The baseline minimises the mean bits/dim.  In ``oe_tune`` mode the
  in-distribution and outlier batches go through one forward pass, and the loss is
  :class:`~density_oe.losses.OEMarginLoss`.
* Each epoch: the mean training bits/dim and the test bits/dim of the evaluation weights, which scoring and
  sampling also use.  The baseline evaluates its Polyak-averaged (EMA) weights; the OE fine-tune its trained
  weights (reasons in :mod:`density_oe.config`).  ``config.json`` names them in ``eval_weights``.

Deliberate differences from the TF code and the pclucas14 port:

* PyTorch's Adam puts ``eps`` outside the square root (TF: inside).  With the loss in bits/dim the gradients' RMS
  is far above either epsilon, so the two agree.
* The learning-rate decay is applied every step, as in TF; the port steps it once per epoch.
* The test bits/dim averages every test image.  The port divides by the number of batches minus one and drops the
  last partial batch.  Training drops the last partial batch, as both do.
* Data order and dropout come from seeded generators per (seed, epoch, step, rank), so runs resume exactly.
"""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Iterable, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from oe_core.cli_config import parse_config
from oe_core.data.transforms import to_unit_range
from oe_core.errors import CheckpointError, cli_main
from oe_core.metrics import auroc
from oe_core.run import Engine, StepContext, Task, derive_seed, has_checkpoint, unwrap
from oe_core.run.cuda_graph import capturable
from oe_core.run.engine import compile_with_fallback
from oe_core.run.release import ModelCard
from oe_core.run.training_data import open_training_data

from .archs import get_arch
from .card import model_card
from .config import KIND, DensityConfig
from .ema import EMA
from .losses import OEMarginLoss
from .perturb import mutate
from .pixelcnn import frozen_weights
from .shapes import image_shape
from .units import bits_per_dim
from .weights import load_density_model


def log_prob(net: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``net.log_prob(x, out=out)``: the likelihood half of a step, a function so that ``--compile`` can compile it."""
    return net.log_prob(x, out=out)


class DensityTask(Task):
    """Maximum-likelihood or OE training of a density model."""

    kind = KIND

    def setup(self, ctx: StepContext) -> None:
        cfg = self.cfg
        self.arch = get_arch(cfg.arch)
        # --compile: the engine compiles the network, this the likelihood (traceable too: one graph each)
        self.likelihood = compile_with_fallback(log_prob) if cfg.compile else log_prob
        self.device, self.rank = ctx.device, ctx.dist.rank
        multiple = self.arch.multiple(cfg.model_config)
        data = open_training_data(cfg, ctx, drop_last=True, test_images=cfg.eval_images,
                                  image_shape=lambda ds: image_shape(ds, cfg.dataset, multiple, self.arch.display))
        self.train_set, self.stream, self.test_loader = data.train_set, data.stream, data.test_loader
        self.image_size = [data.shape[1], data.shape[2]]  # in the checkpoint: sampling and scoring default to it
        self.num_dims = math.prod(data.shape)
        if cfg.uses_outliers:
            self.criterion = OEMarginLoss(cfg.oe_margin, cfg.lam, cfg.oe_margin_unit, num_dims=self.num_dims)
        self.track_loaders = {}
        for name in cfg.track_ood:  # the trajectory's sets (NAME or NAME:SPLIT): fixed images, scored with the test set
            self.track_loaders[name] = data.test_loader_of(name, cfg.track_images)

    def _init_batch(self) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed(derive_seed(self.cfg.seed, "data-init"))
        idx = torch.randperm(len(self.train_set), generator=g)[:self.cfg.init_batch_size]
        return to_unit_range(torch.stack([self.train_set[int(i)][0] for i in idx]).to(self.device))

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        if cfg.mode == "oe_tune":
            model, init_cfg = load_density_model(cfg.init, weights="eval")
            if not self.arch.same_weights(init_cfg, cfg.model_config):
                options = "/".join(f"--{f.replace('_', '-')}" for f in vars(init_cfg))
                raise CheckpointError(f"--init {cfg.init!r} holds a {type(model).__name__} with {init_cfg}, but the "
                                      f"run asks for --arch {cfg.arch} with {cfg.model_config} (pass its --arch "
                                      f"and the same {options})")
            if init_cfg != cfg.model_config:    # free fields set apart (the VAE's K): the run's, with the weights
                tuned = self.arch.build(cfg.model_config)
                tuned.load_state_dict(model.state_dict())
                model = tuned
            return model.train()
        model = self.arch.build(cfg.model_config).to(self.device)
        if cfg.data_init and self.arch.data_init is not None and not (cfg.resume and has_checkpoint(cfg.out)):
            self.arch.data_init(model, self._init_batch())
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        # the engine has moved the model to its device and memory format
        # no average (decay 0, the OE fine-tune's default): evaluate and save the trained weights themselves
        # rather than a copy refreshed after every step
        self.ema = EMA(model, cfg.ema_decay, debias=cfg.ema_debiased) if cfg.ema_decay > 0 else None
        fused = self.device.type in ("cpu", "cuda")  # one kernel per step instead of ~10 per parameter tensor
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, fused=fused)

    def build_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int):
        cfg = self.cfg
        if not cfg.warmup_steps:
            return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / cfg.warmup_steps) * cfg.lr_decay ** step)

    def bits_per_dim(self, model: nn.Module, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Per-image bits/dim of ``x`` ([-1, 1] grid) from the network's ``log_prob``.

        ``model`` may be the engine's DDP or ``torch.compile`` wrapper.  The forward pass goes through it, because
        a wrapper only wraps ``forward``; ``log_prob`` then reads that output.
        """
        out = model(x.contiguous(memory_format=ctx.memory_format))
        return bits_per_dim(self.likelihood(unwrap(model), x, out), self.num_dims)

    def steps_per_epoch(self) -> int:
        return len(self.stream)

    def batches(self, epoch: int, start_step: int) -> Iterable:
        stream = self.stream.epoch(epoch, start_step)
        if not self.cfg.perturb_rate:
            return stream
        return (self.perturbed(batch, epoch, step) for step, batch in enumerate(stream, start_step))

    def perturbed(self, batch, epoch: int, step: int):
        """``--perturb-rate``: the in-distribution images of a batch perturbed (:func:`~density_oe.perturb.mutate`)
        by draws that depend only on (seed, rank, epoch, step), so a resumed run perturbs as an uninterrupted one."""
        (x, y), outliers = batch
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "perturb", self.rank, epoch, step))
        return (mutate(x, self.cfg.perturb_rate, g), y), outliers

    @capturable        # no host syncs: the logs stay device tensors (--cuda-graphs)
    def train_step(self, model: nn.Module, batch, ctx: StepContext) -> tuple[torch.Tensor, dict]:
        (x_in, _), outliers = batch
        x = to_unit_range(ctx.to_device(x_in))
        n = len(x)
        if outliers is not None:
            x = torch.cat([x, to_unit_range(ctx.to_device(outliers[0]))])
        bpd = self.bits_per_dim(model, x, ctx)
        bpd_in = bpd[:n]
        logs = {"train_bpd": bpd_in.detach().mean()}       # tensors: the engine reads them after the step
        if outliers is None:
            return bpd_in.mean(), logs
        bpd_out = bpd[n:]
        logs["outlier_bpd"] = bpd_out.detach().mean()
        return self.criterion(bpd_in, bpd_out), logs

    def step_update(self) -> Optional[EMA]:
        return self.ema        # advance() on the host, apply(model) on the device: also inside a CUDA graph

    def _batch_bpds(self, eval_model: nn.Module, loader: DataLoader, ctx: StepContext) -> list[torch.Tensor]:
        """Per-image bits/dim of every batch of ``loader`` (float64, on the CPU)."""
        out = []
        for x, _ in loader:
            x = to_unit_range(ctx.to_device(x))
            with ctx.autocast():
                out.append(self.bits_per_dim(eval_model, x, ctx).double().cpu())
        return out

    @contextlib.contextmanager
    def _fixed_draws(self, ctx: StepContext):
        """With --track-ood: the evaluation's random draws (a stochastic bound's noise, if a family has one) come
        from one fixed seed at every epoch, and training's random streams are left as they were."""
        if not self.track_loaders:
            yield
            return
        with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
            torch.manual_seed(derive_seed(self.cfg.seed, "evaluation-draws"))
            yield

    def evaluate(self, model: nn.Module, ctx: StepContext) -> dict:
        eval_model = self.ema.model if self.ema is not None else model     # the engine has set model.eval()
        with frozen_weights(eval_model), self._fixed_draws(ctx):
            test = self._batch_bpds(eval_model, self.test_loader, ctx)
            row = {"test_bpd": sum(float(b.sum()) for b in test) / sum(len(b) for b in test)}
            if self.track_loaders:
                row["track_step"] = ctx.global_step + 1          # optimizer steps done when these weights were scored
            for name, loader in self.track_loaders.items():
                ood = torch.cat(self._batch_bpds(eval_model, loader, ctx)).numpy()
                row[f"track_{name}_bpd"] = float(ood.mean())
                row[f"track_{name}_auroc"] = auroc(torch.cat(test).numpy(), ood)   # OOD positive, score = bpd
        return row

    def eval_state_dict(self, model: nn.Module) -> Optional[dict]:
        return self.ema.state_dict() if self.ema is not None else None     # None: the checkpoint's "model"

    def state_dict(self) -> dict:
        ema = self.ema
        return {"ema": ema.state_dict() if ema else None, "ema_updates": ema.updates if ema else 0,
                "image_size": self.image_size}

    def load_state_dict(self, state: dict) -> None:
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"], state.get("ema_updates", 0))

    def model_card(self, state: dict) -> ModelCard:
        return model_card(state)

    def summary(self, row: dict) -> str:
        extra = f" | outlier bpd {row['outlier_bpd']:.4f}" if "outlier_bpd" in row else ""
        weights = "EMA" if self.cfg.ema_decay else "trained weights"
        return (f"epoch {row['epoch']:4d} | {row['time_s']:8.1f}s | train loss {row['train_loss']:.4f} | "
                f"train bpd {row['train_bpd']:.4f}{extra} | test bpd ({weights}) {row['test_bpd']:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(DensityConfig, argv, prog="python -m density_oe.train")
    row = Engine(DensityTask(cfg)).run()
    if "test_bpd" in row:
        print(f"final test bits/dim ({cfg.eval_weights}): {row['test_bpd']:.4f} ({cfg.dataset}, {cfg.out})")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
