"""``python -m study.mini_benchmark.make_v3_photos``: (re)make the photo thumbnails that mini benchmark v3 ships.

A maintainer's tool, not part of set-up: the thumbnails it writes are committed under
``study/mini_benchmark/v3_photos/`` (so a clean clone, CI and non-Debian machines need nothing else).  It needs
Debian's ``apt-get download`` and ``dpkg-deb`` (or the ``.deb`` files in ``--debs``): it fetches the wallpaper
and game-data packages listed in :data:`SHIPPED`, takes each listed photograph, shrinks it to
``--side`` pixels on its shorter side (whole photo, aspect kept, antialiased), strips all metadata, writes it
as JPEG, and writes ``manifest.json`` (class, source package and version, path in the package, author,
licence, SHA-256 of the thumbnail) and copies of the licence texts.  The photographs taken from installed
Python packages (:data:`BUNDLED`) are listed in the manifest and loaded from those packages at build time.

Classes are scene categories, assigned by looking at each photograph: ``plants`` (close-ups of vegetation
and flowers), ``landscapes`` (outdoor scenes: sky, water, hills, forest), ``objects`` (man-made things,
buildings and food).  Photographs of people and animals, graphics and abstract art were left out.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import cli_main

from .deb_photos import save_jpeg, thumbnail, unpack_debs, write_record


@dataclass(frozen=True)
class Shipped:
    name: str
    cls: str
    package: str
    path: str
    author: str
    license: str


_MATE = "usr/share/backgrounds/mate/nature/"
_LOMIRI = "usr/share/backgrounds/"
_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"  # the largest size of each
_PALAPELI = "usr/share/palapeli/collection/"
_MATE_LIC = "GPL-2+"
_LGPL = "LGPL-3 (metadata.json of the wallpaper; Debian's copyright file: GPL-2+)"
_PD = "public domain (the puzzle's .desktop file; Debian's copyright file: GPL-2+ for the package)"

SHIPPED: tuple[Shipped, ...] = (
    # mate-backgrounds: debian/copyright, License GPL-2+
    Shipped("mate_aqua", "landscapes", "mate-backgrounds", _MATE + "Aqua.jpg", "Charles Barbin, 2008", _MATE_LIC),
    Shipped("mate_blinds", "plants", "mate-backgrounds", _MATE + "Blinds.jpg",
            "Lennart Poettering, Andrea Cimitan, 2008", _MATE_LIC),
    Shipped("mate_dune", "landscapes", "mate-backgrounds", _MATE + "Dune.jpg",
            "Marco Cogoni, 2007; Hylke Bons, 2008", _MATE_LIC),
    Shipped("mate_freshflower", "plants", "mate-backgrounds", _MATE + "FreshFlower.jpg", "Jens Ansorg, 2005",
            _MATE_LIC),
    Shipped("mate_garden", "plants", "mate-backgrounds", _MATE + "Garden.jpg", "Charles Barbin, 2008", _MATE_LIC),
    Shipped("mate_greenmeadow", "plants", "mate-backgrounds", _MATE + "GreenMeadow.jpg",
            "Timothy Schellhase, 2005; Lapo Calamandrei, 2008", _MATE_LIC),
    Shipped("mate_ladybird", "plants", "mate-backgrounds", _MATE + "LadyBird.jpg", "Charles Barbin, 2008",
            _MATE_LIC),
    Shipped("mate_raindrops", "plants", "mate-backgrounds", _MATE + "RainDrops.jpg",
            '"blackcombwhistler07", 2008', _MATE_LIC),
    Shipped("mate_storm", "landscapes", "mate-backgrounds", _MATE + "Storm.jpg", "Sergey Nazarov, 2008", _MATE_LIC),
    Shipped("mate_twowings", "plants", "mate-backgrounds", _MATE + "TwoWings.jpg",
            "Charles Barbin, Hylke Bons, 2008", _MATE_LIC),
    Shipped("mate_wood", "objects", "mate-backgrounds", _MATE + "Wood.jpg", "Jean-François Fortin Tam, 2008",
            _MATE_LIC),
    Shipped("mate_yellowflower", "plants", "mate-backgrounds", _MATE + "YellowFlower.jpg", "Charles Barbin, 2008",
            _MATE_LIC),
    # lomiri-wallpapers-16.04: debian/copyright, per file
    Shipped("lomiri_aitzgorri", "landscapes", "lomiri-wallpapers-16.04",
            _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    Shipped("lomiri_bridge", "landscapes", "lomiri-wallpapers-16.04", _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg",
            "Sander Klootwijk, 2018", "CC-BY-SA-4.0"),
    Shipped("lomiri_dragonfly", "plants", "lomiri-wallpapers-16.04", _LOMIRI + "Dragonfly_by_Bolly.jpg",
            '"Bolly", 2018', "CC-BY-SA-4.0"),
    Shipped("lomiri_free", "objects", "lomiri-wallpapers-16.04", _LOMIRI + "free_by_Peter_Nerlich.jpg",
            "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    Shipped("lomiri_greentock", "objects", "lomiri-wallpapers-16.04", _LOMIRI + "greentock_by_Peter_Nerlich.jpg",
            "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    Shipped("lomiri_life", "landscapes", "lomiri-wallpapers-16.04", _LOMIRI + "life_by_Aitzol_Berasategi.jpg",
            "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    Shipped("lomiri_picosdeeuropa", "landscapes", "lomiri-wallpapers-16.04",
            _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    Shipped("lomiri_picture_0b", "objects", "lomiri-wallpapers-16.04", _LOMIRI + "Picture_0B_by_freespace.jpg",
            'Trevor "Freespace", 2018', "CC-BY-4.0"),
    Shipped("lomiri_picture_1a", "objects", "lomiri-wallpapers-16.04", _LOMIRI + "Picture_1A_by_freespace.jpg",
            'Trevor "Freespace", 2018', "CC-BY-4.0"),
    Shipped("lomiri_seeding", "plants", "lomiri-wallpapers-16.04", _LOMIRI + "seeding_by_Clements_Engelhardt.jpg",
            "Clemens Engelhardt, 2018", "CC0-1.0"),
    Shipped("lomiri_sunset", "landscapes", "lomiri-wallpapers-16.04",
            _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    Shipped("lomiri_wine", "objects", "lomiri-wallpapers-16.04", _LOMIRI + "Wine_by_Jakkub_Mede.jpg",
            "Jakub Mede, 2018", "CC-BY-4.0"),
    # plasma-workspace-wallpapers: author and licence from each wallpaper's metadata.json
    Shipped("plasma_bythewater", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("BytheWater"),
            "Maciej Wiklo", _LGPL),
    Shipped("plasma_coldripple", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("ColdRipple"),
            "Risto Saukonpää", _LGPL),
    Shipped("plasma_colorfulcups", "objects", "plasma-workspace-wallpapers", _PLASMA.format("ColorfulCups"),
            "Dmitri Popov", _LGPL),
    Shipped("plasma_darkesthour", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("DarkestHour"),
            "Risto Saukonpää", _LGPL),
    Shipped("plasma_eveningglow", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("EveningGlow"),
            "Ian Hex", _LGPL),
    Shipped("plasma_fallenleaf", "plants", "plasma-workspace-wallpapers", _PLASMA.format("FallenLeaf"),
            "Martin Klapetek", _LGPL),
    Shipped("plasma_grey", "objects", "plasma-workspace-wallpapers", _PLASMA.format("Grey"), "Sigi Sagi", _LGPL),
    Shipped("plasma_kite", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("Kite"), "Risto Saukonpää",
            _LGPL),
    Shipped("plasma_onestandsout", "plants", "plasma-workspace-wallpapers", _PLASMA.format("OneStandsOut"),
            "Risto Saukonpää", _LGPL),
    Shipped("plasma_path", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("Path"), "Risto Saukonpää",
            _LGPL),
    Shipped("plasma_summer_1am", "landscapes", "plasma-workspace-wallpapers", _PLASMA.format("summer_1am"),
            "Risto Saukonpää", _LGPL),
    # palapeli-data: author and licence from each puzzle's .desktop file
    Shipped("palapeli_cincinnati_bridge", "objects", "palapeli-data", _PALAPELI + "cincinnati-bridge.jpg",
            "Derek Jensen", _PD),
    Shipped("palapeli_citrus_fruits", "objects", "palapeli-data", _PALAPELI + "citrus-fruits.jpg",
            "US Department of Agriculture", _PD),
    Shipped("palapeli_honey_bee", "plants", "palapeli-data", _PALAPELI + "european-honey-bee.jpg", "John Severns",
            _PD),
)

# photographs of installed Python packages (bundled_images.PHOTOS), not copied: loaded at build time
BUNDLED: dict[str, str] = {"flower": "plants", "china": "objects", "coffee": "objects", "rocket": "objects",
                           "motorcycle": "objects"}

LICENSE_TEXTS = ("GPL-2", "GPL-3", "LGPL-3", "CC0-1.0")  # copied from /usr/share/common-licenses


@dataclass
class MakeConfig:
    """Make the v3 photo thumbnails from Debian packages (maintainers only; the result is committed)."""

    out: str = help_field("study/mini_benchmark/v3_photos", "folder to write photos/, manifest.json and licenses/ into")
    debs: str = help_field("", "folder holding the .deb files already (empty: apt-get download into a temp folder)")
    side: int = help_field(256, "shorter side of each thumbnail in pixels")
    quality: int = help_field(92, "JPEG quality")

    def validate(self) -> None:
        require(64 <= self.side <= 1024, f"--side must be in [64, 1024], got {self.side}")
        require(50 <= self.quality <= 100, f"--quality must be in [50, 100], got {self.quality}")


_CC = {"CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
       "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/"}


def attribution(manifest: dict) -> str:
    """``LICENSES.md``: what each thumbnail is derived from, its author and licence."""
    lines = ["# Photographs of mini benchmark v3: sources, authors and licences", "",
             "Each `photos/*.jpg` is a derived work of the photograph named below: the whole photograph, shrunk "
             f"to {manifest['side']} pixels on its shorter side and re-encoded as JPEG (metadata dropped; made by "
             "`python -m study.mini_benchmark.make_v3_photos`).  Each thumbnail is distributed under the licence of "
             "its photograph, with the attribution below.  Licence texts: `licenses/` (GPL-2, GPL-3, LGPL-3, "
             "CC0-1.0); "
             + "; ".join(f"{k}: {v}" for k, v in _CC.items()) + ".", "",
             "| thumbnail | class | author | licence | taken from |", "|---|---|---|---|---|"]
    for p in manifest["photos"]:
        if "file" in p:
            lines.append(f"| `{p['file']}` | {p['class']} | {p['author']} | {p['license']} | {p['source']} |")
    lines += ["", "Not shipped here (loaded from the installed package at build time, as in version 2): "
              + ", ".join(f"`{p['name']}` ({p['class']})" for p in manifest["photos"] if "bundled" in p) + "."]
    return "\n".join(lines) + "\n"


def make(cfg: MakeConfig) -> Path:
    out = Path(cfg.out)
    (out / "photos").mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mini_photos_") as tmp:
        debs = Path(cfg.debs) if cfg.debs else Path(tmp)
        versions, roots = unpack_debs((s.package for s in SHIPPED), debs, Path(tmp))
        photos = []
        for s in SHIPPED:
            thumb = thumbnail(roots[s.package] / s.path, cfg.side)
            rel = f"photos/{s.name}.jpg"
            photos.append({"name": s.name, "class": s.cls, "file": rel,
                           "sha256": save_jpeg(thumb, out, rel, cfg.quality),
                           "source": f"Debian package {s.package} {versions[s.package]}: /{s.path}",
                           "author": s.author, "license": s.license, "size": list(thumb.size)})
        for name, cls in BUNDLED.items():
            photos.append({"name": name, "class": cls, "bundled": name,
                           "source": "installed Python package (bundled_images.PHOTOS)"})
    for lic in LICENSE_TEXTS:
        shutil.copyfile(f"/usr/share/common-licenses/{lic}", out / "licenses" / f"{lic}.txt")
    manifest = {"classes": ["plants", "landscapes", "objects"], "side": cfg.side, "photos": photos}
    write_record(out, manifest, attribution(manifest))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(MakeConfig, argv, prog="python -m study.mini_benchmark.make_v3_photos")
    out = make(cfg)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
