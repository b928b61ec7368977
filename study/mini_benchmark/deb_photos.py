"""Shared by the maintainer tools that make the shipped photo thumbnails (``make_v3_photos``, ``make_v4_photos``):
fetch and unpack Debian packages, shrink a photograph to a thumbnail, write it without metadata.

Needs Debian's ``apt-get download`` and ``dpkg-deb`` (or the ``.deb`` files in a folder).  Not used at set-up.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from oe_core.errors import ConfigError


def deb_for(package: str, folder: Path) -> Path:
    """``folder``'s ``package_*.deb``, downloaded there with ``apt-get download`` if missing."""
    found = sorted(folder.glob(f"{package}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None:
            raise ConfigError(f"no {package}_*.deb in {str(folder)!r} and no apt-get to download it; "
                              f"pass --debs with the Debian package files")
        subprocess.run(["apt-get", "download", package], cwd=folder, check=True, capture_output=True)
        found = sorted(folder.glob(f"{package}_*.deb"))
    return found[-1]


def unpack_debs(packages: Iterable[str], debs: Path, tmp: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """Unpack each package (``dpkg-deb -x``) under ``tmp``: (package -> version, package -> root folder)."""
    versions, roots = {}, {}
    for package in sorted(set(packages)):
        deb = deb_for(package, debs)
        versions[package] = re.sub(r"%3a", ":", deb.name.split("_")[1])
        roots[package] = tmp / "x" / package
        roots[package].mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(roots[package])], check=True)
    return versions, roots


def thumbnail(src, side: int):
    """The whole photo (a path or a file object) as RGB, resized (antialiased) so that its shorter side is
    ``side`` pixels (v3's thumbnails; a smaller photo is enlarged -- v3 has none)."""
    from PIL import Image
    with Image.open(src) as im:
        im = im.convert("RGB")
        scale = side / min(im.size)
        size = (max(side, round(im.width * scale)), max(side, round(im.height * scale)))
        return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def thumbnail_at_most(src, side: int):
    """As :func:`thumbnail`, but a photo whose shorter side is already <= ``side`` is kept at its size."""
    from PIL import Image
    with Image.open(src) as im:
        if min(im.size) <= side:
            return im.convert("RGB")
    return thumbnail(src, side)


def write_record(out: Path, manifest: dict, attribution: str) -> None:
    """Write ``out/manifest.json`` and ``out/LICENSES.md`` (the attribution table)."""
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    (out / "LICENSES.md").write_text(attribution)


def save_jpeg(img, out: Path, rel: str, quality: int) -> str:
    """Write ``img`` to ``out/rel`` as JPEG (no EXIF or other metadata: nothing is copied over); its SHA-256."""
    img.save(out / rel, "JPEG", quality=quality, optimize=True)
    return hashlib.sha256((out / rel).read_bytes()).hexdigest()
