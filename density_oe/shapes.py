"""Image-shape checks shared by every density family."""
from __future__ import annotations

from torch.utils.data import Dataset

from oe_core.errors import DataError


def image_shape(ds: Dataset, name: str, multiple: int = 4, model: str = "PixelCNN++") -> tuple[int, int, int]:
    """``(3, H, W)`` of the dataset's images.

    The density models need RGB images whose sides are multiples of ``multiple``: 4 for PixelCNN++, 2^L for an
    L-level Glow.
    """
    shape = tuple(ds[0][0].shape)
    if len(shape) != 3 or shape[0] != 3 or shape[1] % multiple or shape[2] % multiple:
        raise DataError(f"dataset {name!r} has images of shape {shape}; {model} needs (3, H, W) with H and W "
                        f"multiples of {multiple} (use --image-size for generated sets)")
    return shape[0], shape[1], shape[2]
