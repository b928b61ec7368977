"""Loading classifier weights: this suite's checkpoints and the reference code's state dicts."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from oe_core.cli_config import config_from_dict
from oe_core.errors import CheckpointError, CheckpointKindError, UnsafeFileError
from oe_core.run import load_checkpoint
from oe_core.run.release import is_safetensors, read_safetensors, suite_safetensors

from .config import KIND, ClassifierConfig
from .models import HEAD_KEYS, build_model


def read_weights(path: str | Path, state: Optional[dict] = None
                 ) -> tuple[dict[str, torch.Tensor], Optional[ClassifierConfig]]:
    """The model state dict in ``path`` and the config it was trained with (``None`` for reference files).

    ``path`` is a run folder or checkpoint of this suite (kind "classifier"), a run's ``model.safetensors``, or a
    ``.pt`` state dict saved by the reference's ``torch.save(net.state_dict(), ...)`` or any ``.safetensors`` state
    dict (a ``module.`` prefix from ``DataParallel`` is stripped).  ``state``: the checkpoint of ``path`` when the
    caller has already read it (:func:`oe_core.run.load_checkpoint`), so it is not read twice.
    """
    if state is None:
        path = Path(path).expanduser()
        if not path.exists():
            raise CheckpointError(f"classifier weights {str(path)!r} do not exist")
        if is_safetensors(path) and not suite_safetensors(path):   # a plain state dict in safetensors
            return {k.removeprefix("module."): v for k, v in read_safetensors(path)[0].items()}, None
        if not path.is_dir() and not is_safetensors(path):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # not a bare state dict; the checkpoint reader below says what it is
                obj = None
            if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
                return {k.removeprefix("module."): v for k, v in obj.items()}, None
        state = load_checkpoint(path, expect_kind=KIND)
    elif state.get("kind") != KIND:
        raise CheckpointKindError(f"checkpoint {str(path)!r} holds a {state.get('kind')} model, not a {KIND} model")
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
    return _built(sd, cfg, str(path), dropout=cfg.dropout).to(device).eval(), cfg


def _built(sd: dict[str, torch.Tensor], cfg: ClassifierConfig, source: str, classes: Optional[int] = None,
           dropout: float = 0.0) -> nn.Module:
    """The WRN/AllConv of ``cfg`` with the state dict ``sd`` loaded (classes: from its head unless given)."""
    head = HEAD_KEYS[cfg.arch]
    if head not in sd:
        raise CheckpointError(f"weights in {source!r} have no {head!r}: not a {cfg.arch} classifier")
    model = build_model(cfg.arch, classes or int(sd[head].shape[0]), cfg.depth, cfg.widen_factor, dropout, cfg.norm)
    load_into(model, sd, source)
    return model


def parse_options(text: str) -> dict[str, str]:
    """``arch=wrn,depth=40,widen=2,classes=10`` -> a dict (the ``:OPTIONS`` part of ``--ckpt LABEL=PATH:OPTIONS``)."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise CheckpointError(f"model option {item!r} is not KEY=VALUE (e.g. arch=wrn,depth=40,widen=2)")
        out[key.strip()] = value.strip()
    return out


def infer_config(sd: dict[str, torch.Tensor]) -> Optional[ClassifierConfig]:
    """The WRN / AllConv config a state dict's keys and shapes imply (``None`` when they fit neither)."""
    if "fc.weight" in sd and "conv1.weight" in sd and "block1.layer.0.conv1.weight" in sd:
        per_block = len({k.split(".")[2] for k in sd if k.startswith("block1.layer.")})
        widen = int(sd["block1.layer.0.conv1.weight"].shape[0]) // 16
        norm = "batch" if "block1.layer.0.bn1.weight" in sd else "none"
        return ClassifierConfig(arch="wrn", depth=6 * per_block + 4, widen_factor=max(widen, 1), norm=norm)
    if "classifier.weight" in sd and "features.0.weight" in sd:
        return ClassifierConfig(arch="allconv")
    return None


def _int(options: dict[str, str], key: str, default: Optional[int] = None) -> Optional[int]:
    if key not in options:
        return default
    try:
        return int(options[key])
    except ValueError:
        raise CheckpointError(f"model option {key}={options[key]!r} is not an integer") from None


def _torchvision_model(name: str, sd: dict[str, torch.Tensor], options: dict[str, str], source: str) -> nn.Module:
    """torchvision model ``name`` with the number of classes the state dict's head implies."""
    import torchvision
    if name not in torchvision.models.list_models():
        raise CheckpointError(f"{source!r}: arch={name!r} is neither wrn, allconv nor a torchvision model "
                              "(torchvision.models.list_models())")
    classes = _int(options, "classes")
    if classes is None:  # the head is the parameter with 1000 rows in the ImageNet-sized model
        default = torchvision.models.get_model(name, weights=None).state_dict()
        heads = [k for k, v in default.items() if v.dim() >= 1 and v.shape[0] == 1000 and k in sd]
        classes = int(sd[heads[-1]].shape[0]) if heads else 1000
    return torchvision.models.get_model(name, weights=None, num_classes=classes)


TRUST_PICKLE_HELP = ("load whole pickled models (torch.save(model)) from --ckpt files. Unpickling runs code from the "
                     "file: use it only for files whose source you trust. State dicts and suite checkpoints never "
                     "need it")


def _refuse_pickle(path: Path) -> UnsafeFileError:
    return UnsafeFileError(
        f"{str(path)!r} cannot be read as tensors only: it holds pickled Python objects (a whole model saved with "
        "torch.save(model)?), and unpickling them would run code from the file; save a state dict instead (torch.save(model.state_dict(), 'w.pt'), then "
        "--ckpt LABEL=w.pt:arch=...), or, if you trust its source, load it with the evaluation's --trust-pickle")


def load_user_classifier(path: str | Path, options: Optional[dict[str, str]] = None,
                         device: str | torch.device = "cpu", trust_pickle: bool = False) -> nn.Module:
    """A classifier from a user's own file, in eval mode on ``device``.

    ``path`` holds a plain state dict (``torch.save(net.state_dict())`` or a ``.safetensors`` file; a ``module.``
    prefix is stripped).
    For a state dict the architecture comes from ``options`` -- ``arch=wrn,depth=40,widen=2[,classes=10]
    [,norm=batch]``, ``arch=allconv``, or ``arch=<torchvision model name>[,classes=N]`` -- or is inferred from
    the keys when they fit the WRN or AllConv unambiguously.

    A whole pickled model (``torch.save(net)``) is refused with :class:`UnsafeFileError`, because unpickling
    runs code from the file. ``trust_pickle=True`` loads it anyway.
    """
    options = dict(options or {})
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"classifier weights {str(path)!r} do not exist")
    try:
        obj = read_safetensors(path)[0] if is_safetensors(path) else torch.load(path, map_location="cpu",
                                                                                weights_only=True)
    except pickle.UnpicklingError:
        if not trust_pickle:
            raise _refuse_pickle(path) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise CheckpointError(f"cannot read {str(path)!r} as a PyTorch file ({type(e).__name__})") from None
    except Exception as e:  # not a torch file, truncated, ...
        raise CheckpointError(f"cannot read {str(path)!r} as a PyTorch file ({type(e).__name__})") from None
    if isinstance(obj, nn.Module):
        return obj.to(device).eval()
    if not (isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values())):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a state dict or a model")
    sd = {k.removeprefix("module."): v for k, v in obj.items()}
    arch = options.get("arch")
    if arch in (None, "wrn", "allconv"):
        cfg = infer_config(sd)
        if arch is not None:
            cfg = ClassifierConfig(arch=arch, depth=_int(options, "depth", cfg.depth if cfg else 40),
                                   widen_factor=_int(options, "widen", cfg.widen_factor if cfg else 2),
                                   norm=options.get("norm", cfg.norm if cfg else "batch"))
        if cfg is None:
            raise CheckpointError(f"cannot tell the architecture of the state dict {str(path)!r} from its keys; "
                                  "give it: --ckpt LABEL=PATH:arch=wrn,depth=40,widen=2 (or arch=<torchvision name>)")
        return _built(sd, cfg, str(path), classes=_int(options, "classes")).to(device).eval()
    model = _torchvision_model(arch, sd, options, str(path))
    load_into(model, sd, str(path))
    return model.to(device).eval()
