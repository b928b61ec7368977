"""Device selection and mixed precision, device-agnostic (no ``.cuda()`` anywhere)."""
from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` under torchrun -> ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"--device {name!r} is not a valid device ({e})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA GPU is available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def autocast(device: torch.device, amp: str):
    """Context manager: bf16 autocast when ``amp == "bf16"``, otherwise a no-op."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
