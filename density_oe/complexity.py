"""Input complexity as a compressed length in bits per dimension (Serra et al. 2020).

``L(x) = 8 * len(compress(x)) / d`` with ``d = C * H * W``.  Compressors: ``png`` (PIL, ``optimize=True``;
the whole file, so headers add a constant per image size) and ``zlib`` (level 9 of the raw bytes in
(H, W, C) order).  Serra et al. found FLIF best; it is not in the suite's dependencies.
"""
from __future__ import annotations

import io
import zlib
from typing import Callable

import numpy as np
import torch
from PIL import Image

from oe_core.errors import OEError


def _png_bytes(hwc: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG", optimize=True)
    return buf.tell()


def _zlib_bytes(hwc: np.ndarray) -> int:
    return len(zlib.compress(hwc.tobytes(), 9))


COMPRESSORS: dict[str, Callable[[np.ndarray], int]] = {"png": _png_bytes, "zlib": _zlib_bytes}


def complexity_bits_per_dim(x: torch.Tensor, compressor: str = "png") -> torch.Tensor:
    """Compressed length of each uint8 image of the batch ``x`` (B, 3, H, W) in bits per dimension,
    float64 [B] on the CPU."""
    if compressor not in COMPRESSORS:
        raise OEError(f"unknown compressor {compressor!r}; compressors: {', '.join(COMPRESSORS)}")
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise OEError(f"complexity_bits_per_dim expects uint8 RGB batches (B, 3, H, W), got {desc}")
    hwc = x.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()
    size = COMPRESSORS[compressor]
    dims = x[0].numel()
    return torch.tensor([8.0 * size(img) / dims for img in hwc], dtype=torch.float64)
