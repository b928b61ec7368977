"""Weights anyone can load: ``model.safetensors`` (the scoring weights as a plain state dict; its metadata holds
kind, config, which weights and the image size, so :func:`~oe_core.run.checkpoint.load_checkpoint` reads the file
alone, running no code) and a model card ``README.md`` beside a run's ``config.json`` (docs/usage.md).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .. import __version__
from ..atomic import atomic_write_bytes, atomic_write_text, file_sha256
from ..errors import CheckpointError, CheckpointKindError, NotACheckpointError, one_line

WEIGHTS = "model.safetensors"
CARD = "README.md"
_MAX_HEADER = 100 << 20


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file (by its header: a little-endian length, then a JSON object)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n <= _MAX_HEADER and head[8:9] == b"{"


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file (one-line :class:`CheckpointError` if it is damaged)."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:  # truncated, bad header, ...
        raise CheckpointError(f"cannot read {str(path)!r} as safetensors ({type(e).__name__}: {one_line(e, 160)})"
                              ) from None


def suite_safetensors(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file written by the suite (its metadata names the kind of model)."""
    if not is_safetensors(path):
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return bool((f.metadata() or {}).get("kind"))
    except Exception:  # damaged: reading it as a checkpoint says what is wrong
        return True


def scoring_weights(state: dict) -> tuple[dict[str, torch.Tensor], str]:
    """The weights a run scores with -- its evaluation weights (EMA) when kept, else the trained ones -- and which."""
    if state.get("eval_model"):
        return state["eval_model"], "eval_model"
    return state["model"], "model"


def safetensors_state(path: str | Path, expect_kind: Optional[str] = None) -> dict:
    """A suite ``model.safetensors`` as the state :func:`~oe_core.run.checkpoint.load_checkpoint` returns (kind,
    config, model, task.image_size, sha256, path), so every loader of checkpoints takes it unchanged.  Without the
    suite's metadata (a plain state dict: :func:`read_safetensors`) it raises :class:`NotACheckpointError`."""
    path = Path(path)
    tensors, meta = read_safetensors(path)
    kind = meta.get("kind")
    if not kind:
        raise NotACheckpointError(f"{str(path)!r} is a safetensors file without the suite's metadata (kind, "
                                  "config): a plain state dict, which needs its architecture spelled out")
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointKindError(f"{str(path)!r} holds a {kind} model, but a {expect_kind} model is needed")
    try:
        config = json.loads(meta["config"])
        size = json.loads(meta.get("image_size") or "null")
    except (KeyError, ValueError):
        raise CheckpointError(f"{str(path)!r}: its metadata holds no readable config") from None
    return {"kind": kind, "config": config, "model": tensors, "eval_model": None,
            "task": {"image_size": size} if size else {}, "history": [], "meta": meta,
            "sha256": file_sha256(path), "path": str(path)}


@dataclass
class ModelCard:
    """What the model card says; :meth:`render` writes it as Markdown."""

    title: str
    summary: str
    rows: dict[str, str]                       # model, trained, data, weights, config, ...
    metrics: dict[str, Any] = field(default_factory=dict)
    load_code: str = ""
    inputs: str = ""                           # how to prepare inputs and read outputs
    model_class: str = ""                      # module.Class of the network (recorded in the weights' metadata)

    def render(self) -> str:
        lines = [f"# {self.title}", "", self.summary, "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.rows.items()]
        if self.metrics:
            lines += ["", "## Final metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                      for k, v in self.metrics.items()]
        if self.load_code:
            lines += ["", "## Load it with plain PyTorch and safetensors", "",
                      "In this folder, with the suite installed for the model class only:", "",
                      "```python", self.load_code.strip(), "```"]
            if self.inputs:
                lines += ["", self.inputs]
        return "\n".join(lines) + "\n"


def write_release(folder: str | Path, state: dict, card: ModelCard) -> Path:
    """Write ``folder/model.safetensors`` (the scoring weights of the checkpoint-like ``state``) and the model card
    ``folder/README.md``, both atomically; returns the weights file."""
    from safetensors.torch import save

    folder = Path(folder)
    weights, which = scoring_weights(state)
    size = (state.get("task") or {}).get("image_size")
    # safetensors stores each tensor once, contiguous: copies drop shared storage and channels_last strides
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items() if torch.is_tensor(v)}
    meta = {"format": "pt", "kind": str(state["kind"]), "config": json.dumps(state["config"], sort_keys=True),
            "weights": which, "image_size": json.dumps([int(s) for s in size] if size else None),
            "model_class": card.model_class, "oe_suite": __version__}
    path = folder / WEIGHTS
    atomic_write_bytes(path, save(tensors, metadata=meta))
    atomic_write_text(folder / CARD, card.render())
    return path


def final_metrics(history: list[dict], keys: tuple[str, ...]) -> dict[str, Any]:
    """The last epoch's row of ``history``, restricted to ``keys`` (and the epoch)."""
    if not history:
        return {}
    row = history[-1]
    return {"epoch": row.get("epoch"), **{k: row[k] for k in keys if k in row}}
