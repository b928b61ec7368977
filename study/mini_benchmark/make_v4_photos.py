"""``python -m study.mini_benchmark.make_v4_photos``: (re)make the photo thumbnails that mini benchmark v4 ships.

A maintainer's tool, not part of set-up: what it writes is committed under ``study/mini_benchmark/v4_photos/``
(a clean clone, CI and non-Debian machines need nothing else).  What to take is the survey's candidate list,
``v4_candidates.json`` (docs/mini_benchmark.md, "Survey 2"): every candidate photograph of a Debian package
except the :data:`SKIPPED` packages' and those marked ``ambiguous``.  For each it fetches the package
(``apt-get download`` into a temp folder, or the ``.deb`` files in ``--debs``), unpacks it (``dpkg-deb -x``),
takes the file -- out of its Qt ``.rcc`` bundle where the survey names one (:mod:`study.mini_benchmark.qt_rcc`)
-- checks its SHA-256 against the survey's (a different file is an error naming it), and writes the whole
photograph with its shorter side shrunk to ``--side`` pixels (kept if already smaller; antialiased, aspect
kept), as JPEG without metadata.  It writes ``manifest.json`` (class, source package + version + path, author,
licence, SHA-256 of each thumbnail and of the original), ``LICENSES.md`` (the attribution table) and
``licenses/`` (the text of every licence used, from Debian's ``common-licenses`` and the packages' copyright
files).

v3's photographs (candidates with source ``v3 manifest``) are not copied: v4's manifest points at v3's shipped
thumbnails (``../v3_photos/photos/...``, same SHA-256) or at the installed package's picture (``bundled``).
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import DataError, cli_main

from .deb_photos import save_jpeg, thumbnail_at_most, unpack_debs, write_record
from .qt_rcc import read_rcc

HERE = Path(__file__).resolve().parent
SKIPPED = ("enlightenment-data",)   # 400 MB of download for 13 photographs stored in Eet files: left out
CLASSES = ("animals", "buildings", "energy", "landscapes", "objects", "plants", "tools", "underwater")

# where each licence text comes from: a file of /usr/share/common-licenses, or (package, "License:" paragraph of
# its debian/copyright)
LICENSE_TEXTS: dict[str, tuple[str, str]] = {
    "CC-BY-2.0": ("gcompris-qt-data", "CC-BY-2.0"),
    "CC-BY-3.0": ("gcompris-qt-data", "CC-BY-3.0"),
    "CC-BY-SA-3.0": ("lxqt-themes", "CC-BY-SA-3.0"),
    "CC-BY-SA-4.0": ("gcompris-qt-data", "CC-BY-SA-4.0"),
    "CC0-1.0": ("common-licenses", "CC0-1.0"),
    "GPL-2.0-or-later": ("common-licenses", "GPL-2"),
    "BSD-3-Clause": ("libjxl-testdata", "BSD-3-clause-Google"),
}
PUBLIC_DOMAIN = """Public domain

The photographs of mini benchmark v4 whose licence is `public-domain` are in the public domain as recorded by
the package they come from:

* GCompris (Debian package gcompris-qt-data): the README beside each picture inside its .rcc bundle says
  "License: Public Domain" (sources: Wikimedia Commons, publicdomainpictures.net, U.S. government works);
  debian/copyright of the package: "This file is placed in the public domain."
* Tux Paint (Debian package tuxpaint-data), starters reef-back.png and skyline-sf-dusk-back.jpeg: AUTHORS.txt
  says "Public domain. National Oceanic & Atmospheric Adminstration (NOAA)"; debian/copyright: "No license
  required for any purpose; the work is not subject to copyright in any jurisdiction."

No licence text applies; the authors and sources are credited in LICENSES.md all the same.
"""


@dataclass
class MakeConfig:
    """Make the v4 photo thumbnails from Debian packages (maintainers only; the result is committed)."""

    out: str = help_field("study/mini_benchmark/v4_photos", "folder to write photos/, manifest.json, LICENSES.md "
                          "and licenses/ into")
    candidates: str = help_field("study/mini_benchmark/v4_candidates.json", "the survey's candidate list")
    debs: str = help_field("", "folder holding the .deb files already (empty: apt-get download into a temp folder)")
    side: int = help_field(256, "shorter side of each thumbnail in pixels (a smaller photograph keeps its size)")
    quality: int = help_field(92, "JPEG quality")

    def validate(self) -> None:
        require(64 <= self.side <= 1024, f"--side must be in [64, 1024], got {self.side}")
        require(50 <= self.quality <= 100, f"--quality must be in [50, 100], got {self.quality}")


def chosen(candidates: dict) -> list[dict]:
    """The candidates v4 takes: not ambiguous, not from a :data:`SKIPPED` package."""
    return [c for c in candidates["photos"] if not c.get("ambiguous") and c.get("package") not in SKIPPED]


def copyright_paragraph(text: str, name: str) -> str:
    """The stand-alone ``License: name`` paragraph of a Debian copyright file, as plain text."""
    for para in text.split("\n\n"):
        lines = para.strip("\n").splitlines()
        if lines and lines[0].strip() == f"License: {name}":
            body = [ln[1:] if ln.startswith(" ") else ln for ln in lines[1:]]
            return "\n".join("" if ln.strip() == "." else ln for ln in body).strip() + "\n"
    raise DataError(f"no stand-alone 'License: {name}' paragraph in the copyright file")


def _original(c: dict, roots: dict[str, Path], bundles: dict[Path, dict[str, bytes]]) -> bytes:
    path = roots[c["package"]] / c["path"]
    if "path_in_bundle" not in c:
        return path.read_bytes()
    if path not in bundles:
        bundles[path] = read_rcc(path.read_bytes(), str(path))
    if c["path_in_bundle"] not in bundles[path]:
        raise DataError(f"{c['id']}: no {c['path_in_bundle']!r} in {c['path']}")
    return bundles[path][c["path_in_bundle"]]


def _from_v3(c: dict, v3: dict) -> dict:
    name = c["id"].removeprefix("v3_")
    p = next(p for p in v3["photos"] if p["name"] == name)
    entry = {"name": c["id"], "class": c["proposed_class"], "v3_name": name}
    if "bundled" in p:
        return {**entry, "bundled": p["bundled"], "source": p["source"]}
    return {**entry, "file": f"../v3_photos/{p['file']}", "sha256": p["sha256"], "source": p["source"],
            "author": p["author"], "license": p["license"], "size": p["size"]}


def attribution(manifest: dict) -> str:
    """``LICENSES.md``: what each thumbnail is derived from, its author and licence."""
    lics = sorted({p["license"] for p in manifest["photos"] if p.get("file", "").startswith("photos/")})
    lines = ["# Photographs of mini benchmark v4: sources, authors and licences", "",
             "Each `photos/*.jpg` is a derived work of the photograph named below: the whole photograph, shrunk "
             f"to {manifest['side']} pixels on its shorter side (kept as is when already smaller) and re-encoded as "
             "JPEG (metadata dropped; made by `python -m study.mini_benchmark.make_v4_photos`).  Each thumbnail is "
             "distributed under the licence of its photograph, with the attribution below.  Licence texts: "
             "`licenses/` (" + ", ".join(lics) + ").", "",
             "| thumbnail | class | author | licence | taken from | original |", "|---|---|---|---|---|---|"]
    for p in manifest["photos"]:
        if p.get("file", "").startswith("photos/"):
            lines.append(f"| `{p['file']}` | {p['class']} | {p['author']} | {p['license']} | {p['source']} | "
                         f"{p.get('original', '')} |")
    reused = [p for p in manifest["photos"] if "v3_name" in p]
    lines += ["", f"Also used, not copied ({len(reused)} photographs of version 3: their thumbnails are "
              "`../v3_photos/photos/`, sources, authors and licences in `../v3_photos/LICENSES.md`; the "
              "`bundled` ones are loaded from the installed Python package): "
              + ", ".join(f"`{p['v3_name']}` ({p['class']})" for p in reused) + "."]
    return "\n".join(lines) + "\n"


def make(cfg: MakeConfig) -> Path:
    out = Path(cfg.out)
    candidates = json.loads(Path(cfg.candidates).read_text())
    v3 = json.loads((HERE / "v3_photos" / "manifest.json").read_text())
    take = chosen(candidates)
    debian = [c for c in take if c["source"] == "debian"]
    (out / "photos").mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)
    photos = []
    with tempfile.TemporaryDirectory(prefix="mini_photos_") as tmp:
        debs = Path(cfg.debs) if cfg.debs else Path(tmp)
        versions, roots = unpack_debs((c["package"] for c in debian), debs, Path(tmp))
        bundles: dict[Path, dict[str, bytes]] = {}
        for c in take:
            if c["source"] != "debian":
                photos.append(_from_v3(c, v3))
                continue
            if versions[c["package"]] != c["version"]:
                raise DataError(f"{c['id']}: the survey took it from {c['package']} {c['version']}, the .deb here "
                                f"is {versions[c['package']]}; pass --debs with that version")
            data = _original(c, roots, bundles)
            if hashlib.sha256(data).hexdigest() != c["sha256"]:
                raise DataError(f"{c['id']}: {c['path']} {c.get('path_in_bundle', '')} differs from the survey's "
                                f"file (SHA-256)")
            thumb = thumbnail_at_most(io.BytesIO(data), cfg.side)
            rel = f"photos/{c['id']}.jpg"
            where = f"/{c['path']}" + (f" > {c['path_in_bundle']}" if "path_in_bundle" in c else "")
            entry = {"name": c["id"], "class": c["proposed_class"], "file": rel,
                     "sha256": save_jpeg(thumb, out, rel, cfg.quality),
                     "source": f"Debian package {c['package']} {c['version']}: {where}",
                     "author": c["author"], "license": c["license_normalized"],
                     "license_as_recorded": f"{c['license']} ({c['licence_record']})",
                     "original": c.get("original", ""), "original_sha256": c["sha256"],
                     "size": list(thumb.size)}
            if "split_group" in c:
                entry["split_group"] = c["split_group"]
            photos.append(entry)
        used = {p["license"] for p in photos if p.get("file", "").startswith("photos/")}
        for lic in sorted(used - {"public-domain"}):
            if lic not in LICENSE_TEXTS:
                raise DataError(f"no licence text known for {lic!r}; add it to LICENSE_TEXTS")
            package, name = LICENSE_TEXTS[lic]
            if package == "common-licenses":
                text = Path(f"/usr/share/common-licenses/{name}").read_text()
            else:
                text = copyright_paragraph((roots[package] / "usr/share/doc" / package / "copyright").read_text(),
                                           name)
            (out / "licenses" / f"{lic}.txt").write_text(text)
        if "public-domain" in used:
            (out / "licenses" / "public-domain.txt").write_text(PUBLIC_DOMAIN)
        shutil.copyfile(roots["lxqt-themes"] / "usr/share/lxqt/wallpapers/License",
                        out / "licenses" / "lxqt-wallpapers-credits.txt")
    manifest = {"classes": list(CLASSES), "side": cfg.side, "photos": photos}
    write_record(out, manifest, attribution(manifest))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(MakeConfig, argv, prog="python -m study.mini_benchmark.make_v4_photos")
    out = make(cfg)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
