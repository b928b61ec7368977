"""Thumbnails cut from large pictures: random square crops, flips, antialiased downsampling, tints.

A crop is a box ``(x0, y0, x1, y1)`` in source pixels (floats; sub-pixel
boxes are resampled exactly).  PIL's bicubic ``resize`` widens its filter by
the downscale factor, so downsampling is antialiased (the area is averaged,
as when CIFAR/Tiny Images were shrunk from photographs).  Large reductions first
shrink by an integer factor while at least 3x the target remains
(``reducing_gap=3``: PIL's fast path; how close and how fast: ``docs/mini_benchmark.md``).
"""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]


def as_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` -> uint8 ``(H, W, 3)`` (grey is replicated)."""
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def random_square_boxes(rng: np.random.Generator, n: int, region: Box,
                        side_frac: tuple[float, float]) -> np.ndarray:
    """``n`` square boxes inside ``region``; side = U(side_frac) x the region's shorter side.

    Returns float64 ``(n, 4)`` rows ``(x0, y0, x1, y1)``, each contained in ``region``.
    """
    rx0, ry0, rx1, ry1 = region
    short = min(rx1 - rx0, ry1 - ry0)
    side = rng.uniform(side_frac[0], side_frac[1], size=n) * short
    x0 = rx0 + rng.uniform(0.0, 1.0, size=n) * (rx1 - rx0 - side)
    y0 = ry0 + rng.uniform(0.0, 1.0, size=n) * (ry1 - ry0 - side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def render_crops(img: np.ndarray, boxes: np.ndarray, flips: np.ndarray, size: int) -> np.ndarray:
    """Cut ``boxes`` out of ``img`` (uint8, grey or RGB), resize each to ``size`` x ``size``
    (bicubic, antialiased), mirror those with ``flips`` set.  Returns uint8 ``(n, size, size, C)``."""
    pil = Image.fromarray(img)
    out = np.empty((len(boxes), size, size) + img.shape[2:], dtype=np.uint8)
    for i, (box, flip) in enumerate(zip(boxes, flips)):
        thumb = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC, box=tuple(float(v) for v in box),
                                      reducing_gap=3.0))
        out[i] = thumb[:, ::-1] if flip else thumb
    return out


def tint_colours(rng: np.random.Generator, n: int, saturation: tuple[float, float]) -> np.ndarray:
    """``n`` RGB multipliers of random hue with HSV saturation U(``saturation``) and value 1: float64 ``(n, 3)``."""
    hues = rng.uniform(0.0, 1.0, size=n)
    sats = rng.uniform(saturation[0], saturation[1], size=n)
    return np.array([colorsys.hsv_to_rgb(h, s, 1.0) for h, s in zip(hues, sats)], dtype=np.float64).reshape(n, 3)


def tint_grey(grey: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Colour grey thumbnails ``(n, H, W)`` uint8 by multiplying with per-image ``colours`` ``(n, 3)``
    (like a toned photograph: the HSV saturation of every pixel equals its tint's)."""
    rgb = grey[..., None].astype(np.float64) * colours[:, None, None, :]
    return np.round(rgb).astype(np.uint8)
