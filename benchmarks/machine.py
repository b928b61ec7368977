"""A description of the machine a result came from."""
from __future__ import annotations

import os
import platform

import torch

from oe_core.run import cpu_flags, cpu_model, native_bf16


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe(device: torch.device) -> dict:
    """CPU model, flags and cores, torch version, threads, accelerator name (and its TF32 settings), OS and the load
    average now."""
    info = {"cpu": cpu_model(), "cpu_flags": " ".join(cpu_flags()), "native_bf16": native_bf16(device),
            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "os": platform.platform(),
            "device": str(device), "load_average_1_5_15min": load_average()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(accelerator=props.name, accelerator_memory_gb=round(props.total_memory / 2 ** 30, 1),
                    cuda=torch.version.cuda, tf32_convolutions=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return info
