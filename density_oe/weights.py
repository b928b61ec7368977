"""Loading density weights: this suite's checkpoints (kind ``density``, any architecture) and the pclucas14 port's
``.pth`` files (PixelCNN++)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from oe_core.errors import CheckpointError, CheckpointKindError, ConfigError, OEError
from oe_core.run import load_checkpoint
from oe_core.run.release import is_safetensors

from .archs import arch_of
from .config import KIND
from .port import PORT_IMAGE_SIZE, load_port_checkpoint


def _is_state_dict_file(path: Path) -> bool:
    if is_safetensors(path):   # a run's model.safetensors: read as a checkpoint (recent torch.load reads it too)
        return False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a suite checkpoint, pickled objects or not a torch file: the checkpoint reader says
        return False
    return isinstance(obj, Mapping) and bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def trained_image_size(state: dict) -> Optional[tuple[int, int]]:
    """(H, W) a density checkpoint was trained at: recorded by the trainer, else its config's ``image_size``
    when set (older checkpoints), else ``None`` (unknown)."""
    size = (state.get("task") or {}).get("image_size")
    if size:
        return int(size[0]), int(size[1])
    side = (state.get("config") or {}).get("image_size")
    return (int(side), int(side)) if side else None


def image_size_for(model: torch.nn.Module, requested: int, force: bool,
                   unknown: Optional[int] = None) -> Optional[tuple[int, int]]:
    """The (H, W) to sample or score ``model`` at: its training size unless ``requested`` (> 0) says otherwise.

    A ``requested`` size that differs from the training size is a :class:`~oe_core.errors.ConfigError` unless
    ``force``.  When the checkpoint does not record its size: ``requested``, else ``unknown`` (``None``: keep
    the data's own size).
    """
    trained = getattr(model, "trained_size", None)
    if requested and trained and (requested, requested) != tuple(trained) and not force:
        raise ConfigError(f"--image-size {requested} differs from the {trained[0]}x{trained[1]} the model was "
                          "trained at; pass --force-size to use it anyway")
    if requested:
        return requested, requested
    if trained:
        return tuple(trained)
    return (unknown, unknown) if unknown else None


def load_density_model(path: str | Path, weights: str = "eval",
                       state: Optional[dict] = None) -> tuple[nn.Module, Any]:
    """The density model in ``path`` (on the CPU, in eval mode) and its architecture's config (the architecture is
    the checkpoint config's ``arch``; checkpoints from before ``--arch`` hold PixelCNN++).

    The model's ``trained_size`` attribute holds the (H, W) it was trained at (``None`` when the checkpoint
    does not say; see :func:`trained_image_size`).

    ``path`` is a run folder or checkpoint of this suite (kind ``density``), a run's ``model.safetensors``, or a
    pclucas14/pixel-cnn-pp ``.pth``
    state dict (see :mod:`density_oe.port`).  ``weights="eval"`` takes the evaluation (EMA) weights when the run
    kept them, ``"train"`` the raw training weights.  ``state``: the checkpoint of ``path`` when the caller has
    already read it (:func:`oe_core.run.load_checkpoint`), so it is not read twice.
    """
    path = Path(path).expanduser()
    if state is None:
        if not path.exists():
            raise CheckpointError(f"density weights {str(path)!r} do not exist")
        if path.is_file() and _is_state_dict_file(path):
            model = load_port_checkpoint(path)
            model.trained_size = PORT_IMAGE_SIZE
            return model.eval(), model.cfg
        state = load_checkpoint(path, expect_kind=KIND)
    elif state.get("kind") != KIND:
        raise CheckpointKindError(f"checkpoint {str(path)!r} holds a {state.get('kind')} model, not a {KIND} model")
    try:
        arch = arch_of(state["config"])
    except OEError as e:
        raise CheckpointError(f"{str(path)!r}: {e}") from None
    cfg = arch.config(state["config"])
    model = arch.build(cfg)
    sd = state.get("eval_model") if weights == "eval" else None
    try:
        model.load_state_dict(sd or state["model"], strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(f"weights in {str(path)!r} do not fit the {arch.display} of its config "
                              f"({'; '.join(lines[1:3]) or lines[0]})") from None
    model.trained_size = trained_image_size(state)
    return model.eval(), cfg
