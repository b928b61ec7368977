"""House-number-like digit images rendered from scikit-learn's 8x8 handwritten digits.

Layout (shared by both palettes, so the two sets differ *only* in colour):
SVHN's "cropped digits" format -- one digit centred, its neighbours in the
house number partly visible at the sides.  Each image has a centre digit
(height 50-80% of the image, width 55-80% of its height, italic shear up to
+-0.15, centre jittered by 3% of the side) and, each with probability 0.5, a
left and a right neighbour one digit-width (x U(0.8, 1.0)) away: 1-3 digits.
Glyphs are upsampled with cubic splines and shaped into strokes
(smoothstep of the glyph value between 0.2 and 0.7).  Scene: a linear
illumination gradient (gain ``1 + a * t``, ``t`` the position along a random
direction with the image spanning [-0.5, 0.5], ``a`` U(0, 0.25)), a Gaussian
blur of sigma U(0.4, 1.0) px at 32 px (scaled with the size), sensor noise of
sigma U(0.5, 2) / 255, then quantisation to 256 levels.

Palettes (:data:`PALETTES`):

* ``"svhn"`` -- after SVHN's statistics: near-grey paint.  Background luma
  U(0.12, 0.78), digit luma = background +- contrast U(0.15, 0.35) (lighter or
  darker with equal odds; flipped when it would leave [0.02, 0.98]); each of
  the two colours carries a tint of HSV saturation U(0, 0.15) (the digit
  shares the background's hue half of the time), and every pixel gets SVHN's
  colour cast: its train-set channel means (0.4377, 0.4438, 0.4728) minus
  their average, i.e. (-0.0137, -0.0076, +0.0214) -- slightly blue.  The
  background range is chosen so that, with the digits, the set's mean and
  spread are near SVHN's (channel means 0.44/0.44/0.47, std 0.20).
* ``"saturated"`` -- the same digits in saturated random colours: background
  and digit of HSV saturation U(0.7, 1) and value U(0.5, 1), hues 90-270
  degrees apart, redrawn until their luma differs by at least 0.3.
"""
from __future__ import annotations

import colorsys
import zlib
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as PIL's "L" conversion
SVHN_MEAN = np.array([0.4377, 0.4438, 0.4728])  # SVHN train channel means (widely quoted)
SVHN_CAST = SVHN_MEAN - SVHN_MEAN.mean()


def _hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(a % 1.0, b, c) for a, b, c in zip(h, s, v)], dtype=np.float64).reshape(-1, 3)


def _tinted(rng: np.random.Generator, luma: np.ndarray, hue: np.ndarray) -> np.ndarray:
    """Colours of the given luma with a small tint (saturation U(0, 0.15)) of the given hue."""
    t = _hsv(hue, rng.uniform(0.0, 0.15, size=len(luma)), np.ones(len(luma)))
    return t * (luma / (t @ LUMA))[:, None]


def svhn_palette(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Near-grey background/digit colours ``(n, 3)`` each, low contrast (see module docstring)."""
    bg_l = rng.uniform(0.12, 0.78, size=n)
    contrast = rng.uniform(0.15, 0.35, size=n)
    sign = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)
    fg_l = bg_l + sign * contrast
    out = (fg_l < 0.02) | (fg_l > 0.98)
    fg_l[out] = bg_l[out] - sign[out] * contrast[out]
    bg_h = rng.uniform(size=n)
    fg_h = np.where(rng.uniform(size=n) < 0.5, bg_h, rng.uniform(size=n))
    return _tinted(rng, bg_l, bg_h) + SVHN_CAST, _tinted(rng, fg_l, fg_h) + SVHN_CAST


def saturated_palette(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Saturated background/digit colours ``(n, 3)`` each, luma difference >= 0.3."""
    bg = np.empty((n, 3))
    fg = np.empty((n, 3))
    todo = np.arange(n)
    while len(todo):
        k = len(todo)
        h = rng.uniform(size=k)
        b = _hsv(h, rng.uniform(0.7, 1.0, size=k), rng.uniform(0.5, 1.0, size=k))
        f = _hsv(h + rng.uniform(0.25, 0.75, size=k), rng.uniform(0.7, 1.0, size=k), rng.uniform(0.5, 1.0, size=k))
        bg[todo], fg[todo] = b, f
        todo = todo[np.abs((f - b) @ LUMA) < 0.3]
    return bg, fg


PALETTES: dict[str, Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]] = {
    "svhn": svhn_palette,
    "saturated": saturated_palette,
}


def _glyph_mask(glyph: np.ndarray, size: int, cx: float, cy: float, h: float, w: float, shear: float) -> np.ndarray:
    """The 8x8 ``glyph`` drawn into a ``size`` x ``size`` canvas, cell centred at (cx, cy), h x w pixels."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    rows = (y - cy) / h * 8.0 + 3.5
    cols = ((x - cx) + shear * (y - cy)) / w * 8.0 + 3.5
    return map_coordinates(glyph, [rows, cols], order=3, mode="constant", cval=0.0)


def digit_masks(rng: np.random.Generator, glyphs: np.ndarray, labels: np.ndarray, n: int,
                size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stroke masks in [0, 1] ``(n, size, size)`` of 1-3 digits, and the centre digit's label ``(n,)``."""
    masks = np.zeros((n, size, size))
    centre = np.empty(n, dtype=np.int64)
    for i in range(n):
        h = rng.uniform(0.5, 0.8) * size
        w = rng.uniform(0.55, 0.8) * h
        shear = rng.uniform(-0.15, 0.15)
        cx, cy = size / 2 + rng.normal(0.0, 0.03 * size, size=2)
        gap = w * rng.uniform(0.8, 1.0)
        picks = rng.integers(len(glyphs), size=3)
        present = [True, rng.uniform() < 0.5, rng.uniform() < 0.5]
        g = np.zeros((size, size))
        for slot, offset in enumerate((0.0, -gap, gap)):
            if present[slot]:
                g = np.maximum(g, _glyph_mask(glyphs[picks[slot]], size, cx + offset, cy, h, w, shear))
        t = np.clip((g - 0.2) / 0.5, 0.0, 1.0)
        masks[i] = t * t * (3.0 - 2.0 * t)
        centre[i] = labels[picks[0]]
    return masks, centre


def render_digits(seed: int, n: int, size: int, palette: str, glyphs: np.ndarray,
                  labels: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` house-number images ``(n, size, size, 3)`` uint8 in ``palette`` plus metadata
    (``bg``, ``fg`` colours, ``contrast`` = |luma(fg) - luma(bg)|, ``blur``, ``label`` of the centre digit).

    Layout, blur and noise depend on ``seed`` only, so both palettes of one seed draw the same scenes.
    """
    geo = np.random.default_rng([seed, 1])
    masks, centre = digit_masks(geo, glyphs, labels, n, size)
    angle = geo.uniform(0.0, 2 * np.pi, size=n)
    gain = geo.uniform(0.0, 0.25, size=n)
    blur = geo.uniform(0.4, 1.0, size=n) * size / 32.0
    noise_sd = geo.uniform(0.5, 2.0, size=n) / 255.0
    bg, fg = PALETTES[palette](np.random.default_rng([seed, 2, zlib.crc32(palette.encode())]), n)
    noise = np.random.default_rng([seed, 3])
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        illum = 1.0 + gain[i] * (x * np.cos(angle[i]) + y * np.sin(angle[i]))
        m = masks[i][..., None]
        img = (bg[i] * (1.0 - m) + fg[i] * m) * illum[..., None]
        img = gaussian_filter(img, sigma=(blur[i], blur[i], 0.0))
        img = img + noise.normal(0.0, noise_sd[i], size=img.shape)
        out[i] = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    meta = {"bg": bg, "fg": fg, "contrast": np.abs((fg - bg) @ LUMA), "blur": blur, "label": centre}
    return out, meta
