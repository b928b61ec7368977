"""Loading classifier weights: this suite's checkpoints and the reference code's state dicts."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from oe_core.config import config_from_dict
from oe_core.errors import CheckpointError
from oe_core.run import load_checkpoint

from .config import KIND, ClassifierConfig
from .models import HEAD_KEYS, build_model


def read_weights(path: str | Path, state: Optional[dict] = None
                 ) -> tuple[dict[str, torch.Tensor], Optional[ClassifierConfig]]:
    """The model state dict in ``path`` and the config it was trained with (``None`` for reference files).

    ``path`` is a run folder or checkpoint of this suite (kind "classifier"), or a
    ``.pt`` state dict saved by the reference's ``torch.save(net.state_dict(), ...)``
    (a ``module.`` prefix from ``DataParallel`` is stripped).  ``state``: the checkpoint of ``path`` when the
    caller has already read it (:func:`oe_core.run.load_checkpoint`), so it is not read twice.
    """
    if state is None:
        path = Path(path).expanduser()
        if not path.exists():
            raise CheckpointError(f"classifier weights {str(path)!r} do not exist")
        if not path.is_dir():
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # not a bare state dict; the checkpoint reader below says what it is
                obj = None
            if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
                return {k.removeprefix("module."): v for k, v in obj.items()}, None
        state = load_checkpoint(path, expect_kind=KIND)
    elif state.get("kind") != KIND:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {state.get('kind')} model, not a {KIND} model")
    return state["model"], config_from_dict(ClassifierConfig, state["config"])


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)``, with a one-line error naming ``source``."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        detail = "; ".join(lines[1:4]) or lines[0]
        raise CheckpointError(f"weights in {source!r} do not fit the model ({detail})") from None


def load_classifier(path: str | Path, device: str | torch.device = "cpu", cfg: Optional[ClassifierConfig] = None,
                    state: Optional[dict] = None) -> tuple[nn.Module, ClassifierConfig]:
    """A trained classifier in eval mode on ``device``, and its config.

    Reference state dicts carry no config: pass ``cfg`` (arch, depth, widen factor)
    for them.  Feed the model :func:`classifiers_oe.inputs.model_input` of uint8 batches.
    ``state``: an already read checkpoint of ``path`` (see :func:`read_weights`).
    """
    sd, saved = read_weights(path, state)
    cfg = saved or cfg
    if cfg is None:
        raise CheckpointError(f"{str(path)!r} is a bare state dict; pass the config (arch, depth, widen factor) "
                              "it was trained with")
    head = HEAD_KEYS[cfg.arch]
    if head not in sd:
        raise CheckpointError(f"weights in {str(path)!r} have no {head!r}: not a {cfg.arch} classifier")
    model = build_model(cfg.arch, int(sd[head].shape[0]), cfg.depth, cfg.widen_factor, cfg.dropout, cfg.norm)
    load_into(model, sd, str(path))
    return model.to(device).eval(), cfg
