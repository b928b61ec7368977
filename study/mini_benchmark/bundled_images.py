"""Source images of the mini benchmark: pictures that ship *inside* installed packages.

Every loader reads a file bundled with scikit-image (``skimage/data/``),
scikit-learn (``sklearn/datasets/images``, ``sklearn/datasets/data``) or
matplotlib (``mpl-data/sample_data``); none touches the network.  A source that
cannot be read raises :class:`~oe_core.errors.DataError` naming the package.

Colour sources come back as ``uint8`` arrays ``(H, W, 3)``, grey ones as
``uint8`` ``(H, W)`` (alpha channels are composited onto white).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from oe_core.errors import DataError


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data
        return getattr(skimage.data, name)()
    return load


def _motorcycle_left() -> np.ndarray:
    import skimage.data
    return skimage.data.stereo_motorcycle()[0]


def _sklearn_photo(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image
        return load_sample_image(filename)
    return load


def _matplotlib_photo(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib.cbook
        from PIL import Image
        with Image.open(matplotlib.cbook.get_sample_data(filename, asfileobj=False)) as im:
            return np.asarray(im.convert("RGBA"))
    return load


def _flatten_alpha(img: np.ndarray) -> np.ndarray:
    """RGBA (uint8) composited onto a white background -> RGB uint8."""
    rgb = img[..., :3].astype(np.float64)
    a = img[..., 3:4].astype(np.float64) / 255.0
    return np.round(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)


# name -> (loader, package it ships with).  Which set uses which: v2.py.
PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    # colour photographs
    "astronaut": (_skimage("astronaut"), "scikit-image"),
    "chelsea": (_skimage("chelsea"), "scikit-image"),
    "coffee": (_skimage("coffee"), "scikit-image"),
    "rocket": (_skimage("rocket"), "scikit-image"),
    "motorcycle": (_motorcycle_left, "scikit-image"),
    "hubble_deep_field": (_skimage("hubble_deep_field"), "scikit-image"),
    "immunohistochemistry": (_skimage("immunohistochemistry"), "scikit-image"),
    "retina": (_skimage("retina"), "scikit-image"),
    "china": (_sklearn_photo("china.jpg"), "scikit-learn"),
    "flower": (_sklearn_photo("flower.jpg"), "scikit-learn"),
    "grace_hopper": (_matplotlib_photo("grace_hopper.jpg"), "matplotlib"),
    # colour graphics
    "gift": (_matplotlib_photo("Minduka_Present_Blue_Pack.png"), "matplotlib"),
    "colorwheel": (_skimage("colorwheel"), "scikit-image"),
    "logo": (_skimage("logo"), "scikit-image"),
    # grey photographs
    "camera": (_skimage("camera"), "scikit-image"),
    "coins": (_skimage("coins"), "scikit-image"),
    "moon": (_skimage("moon"), "scikit-image"),
    "cell": (_skimage("cell"), "scikit-image"),
    "clock": (_skimage("clock"), "scikit-image"),
    "microaneurysms": (_skimage("microaneurysms"), "scikit-image"),
    # grey textures
    "brick": (_skimage("brick"), "scikit-image"),
    "grass": (_skimage("grass"), "scikit-image"),
    "gravel": (_skimage("gravel"), "scikit-image"),
    "text": (_skimage("text"), "scikit-image"),
    "page": (_skimage("page"), "scikit-image"),
}


def load_photo(name: str) -> np.ndarray:
    """The bundled picture ``name`` as uint8 ``(H, W, 3)`` (colour) or ``(H, W)`` (grey)."""
    if name not in PHOTOS:
        raise DataError(f"unknown mini-benchmark source {name!r}; known: {', '.join(sorted(PHOTOS))}")
    loader, package = PHOTOS[name]
    try:
        img = np.asarray(loader())
    except Exception as e:  # a missing/corrupt bundled file surfaces as many exception types
        raise DataError(f"mini benchmark: cannot load the image {name!r} bundled with {package} "
                        f"({type(e).__name__}: {e}); reinstall {package}") from e
    if img.dtype != np.uint8:
        raise DataError(f"mini benchmark: bundled image {name!r} ({package}) has dtype {img.dtype}, expected uint8")
    if img.ndim == 3 and img.shape[2] == 4:
        img = _flatten_alpha(img)
    return img


def load_lfw_faces() -> np.ndarray:
    """The 100 face crops of scikit-image's LFW subset: uint8 ``(100, 25, 25)``, grey."""
    try:
        import skimage.data
        faces = np.asarray(skimage.data.lfw_subset())[:100]
    except Exception as e:
        raise DataError(f"mini benchmark: cannot load scikit-image's bundled LFW subset "
                        f"({type(e).__name__}: {e}); reinstall scikit-image") from e
    if faces.dtype != np.uint8:  # some scikit-image versions store it as floats in [0, 1]
        faces = np.round(np.clip(faces, 0.0, 1.0) * 255.0).astype(np.uint8)
    return faces


def load_digit_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits: float glyphs in [0, 1] ``(1797, 8, 8)`` and labels."""
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
    except Exception as e:
        raise DataError(f"mini benchmark: cannot load scikit-learn's bundled digits "
                        f"({type(e).__name__}: {e}); reinstall scikit-learn") from e
    return d.images.astype(np.float64) / 16.0, d.target.astype(np.int64)
