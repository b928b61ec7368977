"""The model card of a classifier run (``README.md`` beside ``model.safetensors``; see :mod:`oe_core.run.release`)."""
from __future__ import annotations

from oe_core.cli_config import config_from_dict
from oe_core.data.transforms import CIFAR_MEAN, CIFAR_STD
from oe_core.run.release import ModelCard, final_metrics, scoring_weights

from .config import ClassifierConfig
from .models import HEAD_KEYS

_TRAINED = {"baseline": "cross-entropy from scratch",
            "oe_tune": "Outlier Exposure fine-tune of {init}",
            "oe_scratch": "Outlier Exposure from scratch"}


def _load_code(cfg: ClassifierConfig) -> str:
    head = HEAD_KEYS[cfg.arch]
    build = ('WideResNet(depth=config["depth"], widen_factor=config["widen_factor"], drop_rate=config["dropout"],\n'
             f'                   norm=config["norm"], num_classes=weights["{head}"].shape[0])'
             if cfg.arch == "wrn" else f'AllConvNet(num_classes=weights["{head}"].shape[0])')
    cls = "WideResNet" if cfg.arch == "wrn" else "AllConvNet"
    return (f"import json\n\nfrom safetensors.torch import load_file\n\nfrom classifiers_oe.models import {cls}\n\n"
            'config = json.load(open("config.json"))\nweights = load_file("model.safetensors")\n'
            f"model = {build}\nmodel.load_state_dict(weights)\nmodel.eval()\n")


def model_card(state: dict) -> ModelCard:
    """The card of the classifier run whose checkpoint-like ``state`` (kind, config, model, history) is given."""
    cfg = config_from_dict(ClassifierConfig, state["config"])
    weights, _ = scoring_weights(state)
    classes = int(weights[HEAD_KEYS[cfg.arch]].shape[0])
    net = (f"WRN-{cfg.depth}-{cfg.widen_factor} (`classifiers_oe.models.WideResNet`, dropout {cfg.dropout}, norm "
           f"{cfg.norm})" if cfg.arch == "wrn" else "AllConv (`classifiers_oe.models.AllConvNet`)")
    trained = _TRAINED[cfg.mode].format(init=f"`{cfg.init}`")
    if cfg.uses_outliers:
        trained += f" ({cfg.oe_loss} loss, lambda {cfg.lam})"
    data = f"in-distribution `{cfg.dataset}` (train split; metrics on the test split)"
    if cfg.uses_outliers:
        data += (f"; outliers `{cfg.outliers}` ({cfg.oe_batch_size} per step, {cfg.outlier_sampling} sampling, one "
                 "forward pass with the in-distribution batch)")
    rows = {"model": f"{net}, {classes} classes",
            "trained": f"{trained}, {cfg.epochs} epochs (`python -m classifiers_oe.train --mode {cfg.mode}`)",
            "data": data,
            "weights": "`model.safetensors`: the trained weights (the classifier keeps no average)",
            "config": (f"`config.json` (every option); SGD lr {cfg.lr} with per-step cosine decay to {cfg.lr_min}, "
                       f"Nesterov momentum {cfg.momentum}, weight decay {cfg.weight_decay}, batch {cfg.batch_size}, "
                       f"seed {cfg.seed}")}
    mean = ", ".join(f"{255 * m:.1f}" for m in CIFAR_MEAN)
    std = ", ".join(f"{255 * s:.1f}" for s in CIFAR_STD)
    inputs = (f"Inputs: float images `(B, 3, H, W)` scaled to [0, 1] and normalised per channel with mean ({mean}) / "
              f"255 and std ({std}) / 255 (the reference's CIFAR values); outputs: logits. The MSP anomaly score is "
              "`-logits.softmax(1).max(1).values` (higher = more anomalous).")
    return ModelCard(f"{cfg.dataset} classifier: {cfg.mode}", "A classifier trained with the OE study suite "
                     "(Outlier Exposure, Hendrycks et al., ICLR 2019).", rows,
                     final_metrics(state.get("history") or [], ("train_loss", "test_loss", "test_error")),
                     _load_code(cfg), inputs, model_class=f"classifiers_oe.models.{'WideResNet' if cfg.arch == 'wrn' else 'AllConvNet'}")
