"""The model card of a density run (``README.md`` beside ``model.safetensors``; see :mod:`oe_core.run.release`)."""
from __future__ import annotations

import dataclasses

from oe_core.cli_config import config_from_dict
from oe_core.run.release import ModelCard, final_metrics, scoring_weights

from .archs import arch_of
from .config import DensityConfig


def model_card(state: dict) -> ModelCard:
    """The card of the density run (or imported port weights) whose checkpoint-like ``state`` is given."""
    cfg = config_from_dict(DensityConfig, state["config"])
    arch = arch_of(state["config"])
    cls = arch.build
    hyper = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(arch.config(state["config"])).items())
    _, which = scoring_weights(state)
    size = (state.get("task") or {}).get("image_size")
    side = f"{size[0]}x{size[1]}" if size else "its data's size"
    if state.get("source"):
        trained = f"imported from the pclucas14/pixel-cnn-pp weights `{state['source']}` (`python -m density_oe.port`)"
    elif cfg.mode == "oe_tune":
        trained = (f"OE margin ranking fine-tune of `{cfg.init}` (margin {cfg.oe_margin} {cfg.oe_margin_unit}, "
                   f"lambda {cfg.lam}), {cfg.epochs} epochs")
    else:
        trained = f"maximum likelihood from scratch, {cfg.epochs} epochs"
    data = f"in-distribution `{cfg.dataset}` at {side} (train split; metrics on the test split)"
    if cfg.mode == "oe_tune" and not state.get("source"):
        data += f"; outliers `{cfg.outliers}` ({cfg.oe_batch_size} per step, {cfg.outlier_sampling} sampling)"
    weights = ("the EMA (evaluation) weights" if which == "eval_model" else "the trained weights")
    rows = {"model": f"{arch.display} (`{cls.__module__}.{cls.__name__}`): {hyper}",
            "trained": trained + f" (`python -m density_oe.train --arch {arch.name} --mode {cfg.mode}`)",
            "data": data,
            "weights": f"`model.safetensors`: {weights}, the ones the suite scores with ({cfg.eval_weights})",
            "config": (f"`config.json` (every option); Adam lr {cfg.lr} (x{cfg.lr_decay} per step), betas "
                       f"({cfg.beta1}, {cfg.beta2}), batch {cfg.batch_size}, seed {cfg.seed}")}
    code = (f"import json\n\nfrom safetensors.torch import load_file\n\nfrom {cls.__module__} import {cls.__name__}\n\n"
            'config = json.load(open("config.json"))\n'
            f"model = {cls.__name__}.from_config(config)\n"
            'model.load_state_dict(load_file("model.safetensors"))\nmodel.eval()\n')
    inputs = ("Inputs: float images `(B, 3, H, W)` on the [-1, 1] grid of 8-bit values (`uint8 / 127.5 - 1`), "
              f"H and W as trained ({side}). `model.log_prob(x)` is the log-likelihood in nats per image; bits/dim "
              "= `-log_prob / (3 * H * W * ln 2)` (higher = more anomalous).")
    return ModelCard(f"{cfg.dataset} {arch.display}: {cfg.mode}", "A density model trained with the OE study suite "
                     "(Outlier Exposure, Hendrycks et al., ICLR 2019).", rows,
                     final_metrics(state.get("history") or [], ("train_loss", "train_bpd", "outlier_bpd",
                                                                  "test_bpd")),
                     code, inputs, model_class=f"{cls.__module__}.{cls.__name__}")
