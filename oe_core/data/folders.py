"""Natural-image OOD test sets stored as image folders: Textures (DTD), Places365, LSUN, iSUN, and any folder of
the user's own images (``folder,path=DIR``).  Images (:func:`find_images`) are converted to RGB, resized so their
shorter side is ``size`` and center-cropped to ``size`` x ``size`` (the reference's ``Resize(32)`` +
``CenterCrop(32)``); a user ``transform`` gets that PIL image; targets are ``-1``.  Differences from the reference
(LSUN, iSUN, the Places365 subset :data:`PLACES365_SUBSET`): docs/paper.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import DataError, OEError, one_line
from .registry import data_error, register_dataset
from .sources import EvalSubset, Source, torchvision_md5
from .transforms import to_uint8_tensor


def find_images(name: str, folder: Path, display: str = "") -> list[Path]:
    """All image files under ``folder`` (recursive, sorted, hidden names skipped); ``display`` names a set that
    is not under the data root in errors."""
    if not folder.is_dir():
        raise data_error(name, folder, "folder not found")
    files = sorted((p for p in folder.rglob("*")
                    if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        if display:
            raise DataError(f"dataset {display!r}: no images ({', '.join(IMG_EXTENSIONS)}) under {str(folder)!r}")
        raise data_error(name, folder, f"no images ({', '.join(IMG_EXTENSIONS)}) found in the folder")
    return files


class ImageFiles(Dataset):
    """Image files resized (shorter side) and center-cropped to ``size``; target ``-1``.  An unreadable file raises
    :class:`DataError` naming it, or, with ``collect_errors`` set, yields a black image and is recorded in
    :attr:`bad`, so one pass finds every bad file (:meth:`check_bad` names them all in one error)."""

    def __init__(self, files: list[Path], size: int = 32, transform: Optional[Callable] = None,
                 name: str = "images"):
        if size < 1:
            raise OEError(f"dataset {name!r}: size must be >= 1, got {size}")
        self.files, self.size, self.transform, self.name = list(files), size, transform, name
        self.collect_errors = False
        self.bad: dict[str, str] = {}

    def check_bad(self) -> None:
        """:class:`DataError` listing every unreadable file met so far (none: nothing)."""
        if self.bad:
            listed = "; ".join(f"{p} ({why})" for p, why in sorted(self.bad.items()))
            raise DataError(f"dataset {self.name!r}: {len(self.bad)} of {len(self.files)} images cannot be read: "
                            f"{listed}")

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> Image.Image:
        """The resized, center-cropped RGB image ``index``; :class:`DataError` names an unreadable file."""
        path = self.files[index]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"dataset {self.name!r}: cannot read image {str(path)!r}: {e}") from e
        return TF.center_crop(TF.resize(img, self.size), self.size)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        try:
            img = self.load(index)
        except DataError as e:
            if not self.collect_errors:
                raise
            self.bad[str(self.files[index])] = one_line(e.__cause__ or e, 120)
            img = Image.new("RGB", (self.size, self.size))
        return (to_uint8_tensor(img) if self.transform is None else self.transform(img)), -1


PLACES365_SUBSET = EvalSubset(
    "places365-val-10k", "places365_val_10k.txt",
    "8915ae2df1b4ccdd2aeccaadced6d8f76c5978c83610344d8cf3f99a7c907e92", 10000,
    "10,000 of the 36,500 Places365-Standard validation images (val_256), drawn with numpy "
    "default_rng(365); the reference's own places365/test_subset is undocumented")


def _odin(filename: str, dropbox_id: str, target: str) -> Source:
    """An archive of ODIN's OOD sets (github.com/facebookresearch/odin, README), as published on Dropbox."""
    return Source(filename, f"https://www.dropbox.com/s/{dropbox_id}/{filename}?dl=1", target=target)


def _folder_set(name: str, subdir: str, description: str, files: str, url: str, tags: tuple[str, ...] = (),
                sources: tuple[Source, ...] = ()) -> None:
    """Register the OOD test set ``name``: the images under ``<data root>/subdir``."""
    def build(root: Path, split: str, transform: Optional[Callable], download: bool, *,
              size: int = 32) -> ImageFiles:
        return ImageFiles(find_images(name, root / subdir), size, transform, name)

    build.__doc__ = f"{description}: images under ``{subdir}/``, Resize(size) + CenterCrop(size)."
    register_dataset(name, splits=("test",), description=description, files=files, url=url, role="ood", tags=tags,
                     sources=sources)(build)


_folder_set("textures", "dtd/images", "Describable Textures (DTD), 5,640 images of 47 texture classes",
            "dtd/images/ (extract dtd-r1.0.1.tar.gz)", "https://www.robots.ox.ac.uk/~vgg/data/dtd/", ("paper-ood",),
            (Source("dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                    target="dtd", pin=torchvision_md5("DTD._MD5"), archive_dir="dtd"),))
_folder_set("places365", "places365", "Places365 scenes (the reference's places365/test_subset is "
            "undocumented; fetch takes the evaluation subset places365-val-10k)",
            "places365/ (image folder; the reference's places365/test_subset)", "http://places2.csail.mit.edu/",
            ("paper-ood",),
            (Source("val_256.tar", "http://data.csail.mit.edu/places/places365/val_256.tar", target="places365",
                    pin=torchvision_md5("Places365._IMAGES_META.val,True.1"), archive_dir="val_256",
                    members=PLACES365_SUBSET),))
_folder_set("lsun", "lsun", "LSUN scenes, official test set exported from lmdb to images (the reference's LSUN)",
            "lsun/ (images exported from the LSUN test lmdb)",
            "http://dl.yf.io/lsun/scenes/test_lmdb.zip (export with github.com/fyu/lsun; no fetch: the export "
            "needs lmdb); ODIN's crop and resize sets: lsun-crop, lsun-resize", ("paper-ood",))
_folder_set("lsun-crop", "lsun_crop", "LSUN (crop): ODIN's 10,000 random 32x32 crops of LSUN test images "
            "(not the reference's LSUN)", "lsun_crop/ (ODIN's LSUN.tar.gz)",
            "https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz", (),
            (_odin("LSUN.tar.gz", "fhtsw1m3qxlwj6h", "lsun_crop"),))
_folder_set("lsun-resize", "lsun_resize", "LSUN (resize): ODIN's 10,000 LSUN test images downsampled to 32x32 "
            "(not the reference's LSUN)", "lsun_resize/ (ODIN's LSUN_resize.tar.gz)",
            "https://www.dropbox.com/s/moqh2wh8696c3yl/LSUN_resize.tar.gz", (),
            (_odin("LSUN_resize.tar.gz", "moqh2wh8696c3yl", "lsun_resize"),))
_folder_set("isun", "isun", "iSUN (as used by ODIN; not used by the reference)",
            "isun/ (extract ODIN's iSUN.tar.gz and name the folder isun)",
            "https://www.dropbox.com/s/ssz7qxfqae0cca5/iSUN.tar.gz", (),
            (_odin("iSUN.tar.gz", "ssz7qxfqae0cca5", "isun"),))


@register_dataset("folder", splits=("test",), description="any folder of your own images (recursive; jpg, png, "
                  "...), e.g. --ood folder,path=/data/my_ood; Resize(size) + CenterCrop(size) as the paper's "
                  "natural-image sets", files="", url="", role="ood", needs_root=False)
def build_folder(root: Optional[Path], split: str, transform: Optional[Callable], download: bool, *,
                 path: str = "", size: int = 32) -> ImageFiles:
    """Every image file under ``path`` (recursive, sorted by relative path, hidden names skipped)."""
    if not path:
        raise OEError("dataset 'folder' needs path=DIR, e.g. folder,path=/data/my_ood")
    folder = Path(str(path)).expanduser()
    name = f"folder,path={path}"
    if not folder.is_dir():
        raise DataError(f"dataset {name!r}: {str(folder)!r} is not a folder")
    files = find_images("folder", folder, name)
    return ImageFiles(files, size, transform, name)
