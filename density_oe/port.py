"""Import the released checkpoints of the pclucas14/pixel-cnn-pp PyTorch port into :class:`PixelCNNpp`.

The port's files (``pcnn_lr.0.00040_nr-resnet5_nr-filters160_{319,589,889}.pth``) are ``state_dict``s saved from
``nn.DataParallel``: every key starts with ``module.``, and every layer is wrapped by ``torch.nn.utils.weight_norm``
(``weight_g``/``weight_v``).  The conversion, key by key, with strict matching:

* drop the ``module.`` prefix and the wrapper level (``.conv``, ``.lin_a``, ``.deconv``);
* convolutions: ``weight_g`` ``(out, 1, 1, 1)`` -> ``(out,)``;
* ``nin`` (``nn.Linear``): ``weight_v`` ``(out, in)`` -> ``(out, in, 1, 1)``, ``weight_g`` ``(out, 1)`` -> ``(out,)``;
* transposed convolutions: the port normalises per *input* channel (``weight_norm(dim=0)`` on a ``(in, out, kh,
  kw)`` weight); this model normalises per output channel as the TF code does, so the effective weight
  ``W = g_in * v / ||v||_in`` is re-expressed as ``v = W``, ``g_out = ||W||_out`` (same ``W``, same outputs).

Nothing is skipped silently (the port's ``load_part_of_model`` does, which is how its ``module.`` prefix bites):
a missing, unexpected or mis-shaped key is a :class:`~oe_core.errors.CheckpointError`.

CLI: ``python -m density_oe.port --src pcnn_...889.pth --out runs/pixelcnn_port`` writes a suite checkpoint
(kind ``density``) that ``density_oe.score``, ``density_oe.sample`` and ``density_oe.train --mode oe_tune`` read.
"""
from __future__ import annotations

import pickle
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from oe_core.cli_config import config_to_dict, help_field, parse_config, require, save_config
from oe_core.errors import CheckpointError, cli_main, one_line
from oe_core.outputs import check_writable_folder
from oe_core.run import save_checkpoint
from oe_core.run.checkpoint import checkpoint_format
from oe_core.run.release import WEIGHTS, write_release

from .card import model_card
from .config import KIND, DensityConfig
from .pixelcnn import PixelCNNConfig, PixelCNNpp

PORT_IMAGE_SIZE = (32, 32)  # the port's released weights are CIFAR-10 models

_WRAPPED = re.compile(r"^(?P<layer>.+)\.(?P<wrap>conv|lin_a|deconv)\.(?P<param>weight_g|weight_v|bias)$")


def infer_model_config(port_state: Mapping[str, torch.Tensor], dropout: float = 0.5) -> PixelCNNConfig:
    """Read ``nr_resnet``, ``nr_filters`` and ``nr_logistic_mix`` off a port ``state_dict`` (prefix stripped)."""
    try:
        filters = port_state["u_init.conv.weight_v"].shape[0]
        mix = port_state["nin_out.lin_a.weight_v"].shape[0] // 10
    except KeyError as e:
        raise CheckpointError(f"not a pixel-cnn-pp checkpoint: key {e.args[0]!r} is missing") from None
    blocks = {int(m.group(1)) for k in port_state if (m := re.match(r"up_layers\.0\.u_stream\.(\d+)\.", k))}
    return PixelCNNConfig(nr_resnet=len(blocks), nr_filters=filters, nr_logistic_mix=mix, dropout=dropout)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key (all keys must carry it, or none)."""
    has = [k.startswith(prefix) for k in state]
    if any(has) and not all(has):
        raise CheckpointError(f"checkpoint mixes keys with and without the {prefix!r} prefix")
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def convert_port_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Port ``state_dict`` (with or without ``module.``) -> :class:`PixelCNNpp` ``state_dict``."""
    state = strip_prefix(state)
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        m = _WRAPPED.match(key)
        if m is None:
            raise CheckpointError(f"unexpected key {key!r} in the pixel-cnn-pp checkpoint")
        layer, wrap, param = m.group("layer", "wrap", "param")
        t = t.detach().float()
        if wrap == "deconv":
            if param == "bias":
                out[f"{layer}.bias"] = t
            elif param == "weight_v":
                g = state.get(f"{layer}.deconv.weight_g")
                if g is None:
                    raise CheckpointError(f"{layer}.deconv.weight_g is missing from the checkpoint")
                w = t * (g.float().reshape(-1, 1, 1, 1) / torch.linalg.vector_norm(t, dim=(1, 2, 3), keepdim=True))
                out[f"{layer}.weight_v"] = w
                out[f"{layer}.weight_g"] = torch.linalg.vector_norm(w, dim=(0, 2, 3))
            continue
        if param == "weight_g":
            t = t.reshape(-1)
        elif param == "weight_v" and wrap == "lin_a":
            t = t.reshape(*t.shape, 1, 1)
        out[f"{layer}.{param}"] = t
    return out


def load_port_state_dict(model: PixelCNNpp, state: Mapping[str, torch.Tensor]) -> None:
    """Load a port ``state_dict`` into ``model`` with strict key and shape matching."""
    converted = convert_port_state_dict(state)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    bad = sorted(k for k in set(own) & set(converted) if own[k].shape != converted[k].shape)
    if missing or unexpected or bad:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad)):
            if keys:
                parts.append(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})")
        raise CheckpointError("pixel-cnn-pp checkpoint does not match the model: " + "; ".join(parts))
    model.load_state_dict(converted, strict=True)


def load_port_checkpoint(path: str | Path, dropout: float = 0.5) -> PixelCNNpp:
    """Build a :class:`PixelCNNpp` of the checkpoint's size and load the port's weights into it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"pixel-cnn-pp checkpoint {str(path)!r} does not exist")
    if checkpoint_format(path) is not None:
        raise CheckpointError(f"{str(path)!r} is already an OE-suite checkpoint, not a pixel-cnn-pp .pth "
                              "file: use it directly (--init, --ckpt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, not a torch file, pickled objects ...
        why = ("it holds pickled Python objects, which the suite does not unpickle, or is not a torch file"
               if isinstance(e, pickle.UnpicklingError) else f"{type(e).__name__}: {one_line(e, 160)}")
        raise CheckpointError(f"cannot read {str(path)!r} as a PyTorch state_dict of tensors ({why})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(state).__name__}, not a state_dict")
    if not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} is not a state_dict of tensors only")
    model = PixelCNNpp(infer_model_config(strip_prefix(state), dropout))
    load_port_state_dict(model, state)
    return model


@dataclass
class PortConfig:
    """Convert a pclucas14/pixel-cnn-pp checkpoint into an OE-suite density checkpoint."""

    src: str = help_field("", "the port's .pth file (e.g. pcnn_lr.0.00040_nr-resnet5_nr-filters160_889.pth)")
    out: str = help_field("runs/pixelcnn_port", "folder to write checkpoint.pt (kind density), config.json, "
                                                "model.safetensors and its model card README.md into")

    def validate(self) -> None:
        require(bool(self.src), "--src must name the pixel-cnn-pp .pth file")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(PortConfig, argv, prog="python -m density_oe.port")
    check_writable_folder(cfg.out)
    model = load_port_checkpoint(cfg.src)
    train_cfg = DensityConfig(**asdict(model.cfg), out=cfg.out)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state = {"kind": KIND, "config": config_to_dict(train_cfg), "model": model.state_dict(),
             "eval_model": None, "source": str(Path(cfg.src).resolve()),
             "task": {"image_size": list(PORT_IMAGE_SIZE)}}
    path = save_checkpoint(out, state, kind=KIND, step=0, epoch=0)
    save_config(train_cfg, out / "config.json")
    write_release(out, state, model_card(state))    # model.safetensors + README.md, as a finished run's
    print(f"wrote {path}, {out / WEIGHTS} (nr_resnet={model.cfg.nr_resnet}, nr_filters={model.cfg.nr_filters}, "
          f"nr_logistic_mix={model.cfg.nr_logistic_mix})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
