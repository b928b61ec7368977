"""Mini benchmark v4: the shipped thumbnails and their record, whole photographs (and monuments photographed twice)
held out per split, balance, cache key, version selection, and the maker's pieces (Qt .rcc reader, licence
paragraphs, thumbnails).

Crops are recomputed independently from the shipped thumbnails with PIL, so a builder whose metadata lied about
which photograph an image came from would fail here.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oe_core.data import dataset_info
from oe_core.errors import DataError
from study.mini_benchmark import v4
from study.mini_benchmark.photo_manifest import SPLITS, PhotoSet, photo_splits
from study.mini_benchmark.sets import build_mini
from study.mini_benchmark.versions import get_benchmark

SIZE, N = 16, 48          # 6 images per class
CANDIDATES = Path(v4.__file__).resolve().parent / "v4_candidates.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mini4_cache")
    return {s: build_mini("mini4-id", s, size=SIZE, seed=0, n=N, cache_dir=cache) for s in SPLITS}


def test_every_photograph_is_in_exactly_one_split_and_each_split_has_every_class():
    m = v4.PHOTOS.manifest()
    names = [p["name"] for p in m["photos"]]
    assert len(names) == len(set(names)) == 323
    assert tuple(m["classes"]) == v4.CLASSES_8 == v4.CLASSES                 # the 8-class design is registered
    per_split = {s: [n for c in v4.CLASSES for n in v4.split_photos(s)[c]] for s in SPLITS}
    assert sorted(n for s in SPLITS for n in per_split[s]) == sorted(names)  # none lost, none in two splits
    for c in v4.CLASSES:
        counts = [len(v4.split_photos(s)[c]) for s in SPLITS]
        assert counts[0] >= 14 and min(counts[1:]) >= 4, (c, counts)
    # the 5-class merge holds out exactly the same photographs
    for s in SPLITS:
        assert sorted(sum(v4.DESIGNS["5"].split_photos(s).values(), [])) == sorted(per_split[s])


def test_photographs_of_one_monument_share_a_split():
    m = v4.PHOTOS.manifest()
    where = v4.PHOTOS.splits()
    groups: dict[str, set[str]] = {}
    for p in m["photos"]:
        if "split_group" in p:
            groups.setdefault(p["split_group"], set()).add(where[p["name"]])
    assert len(groups) == 8 and all(len(g) == 1 for g in groups.values())
    # the rule, on made-up classes of 10 photographs, 4 of them in two pairs (8 units): a pair always moves
    # together, whichever of its photographs sorts first; without the groups some pairs would be split
    split_pairs = 0
    for cls in [f"class{i}" for i in range(12)]:
        photos = [{"name": f"p{i}", "class": cls} for i in range(6)]
        photos += [{"name": n, "class": cls, "split_group": g} for n, g in
                   (("a1", "ga"), ("z9", "ga"), ("b1", "gb"), ("y2", "gb"))]
        s = photo_splits({"classes": [cls], "photos": photos}, "test set")
        assert s["a1"] == s["z9"] and s["b1"] == s["y2"] and len(s) == 10
        loose = photo_splits({"classes": [cls], "photos": [{k: v for k, v in p.items() if k != "split_group"}
                                                           for p in photos]}, "test set")
        split_pairs += loose["a1"] != loose["z9"] or loose["b1"] != loose["y2"]
    assert split_pairs > 0
    bad = [{"name": "p", "class": "c", "split_group": "ga"}, {"name": "q", "class": "d", "split_group": "ga"}]
    with pytest.raises(DataError, match="split_group 'ga' spans the classes 'c' and 'd'"):
        photo_splits({"classes": ["c", "d"], "photos": bad}, "test set")


def _recrop(name: str, box: np.ndarray, flip: bool) -> np.ndarray:
    img = Image.fromarray(v4.PHOTOS.load(name))
    t = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=tuple(float(v) for v in box),
                              reducing_gap=3.0))
    return t[:, ::-1] if flip else t


def test_built_splits_are_balanced_and_draw_only_their_own_photographs(built):
    m = v4.PHOTOS.manifest()
    names = [p["name"] for p in m["photos"]]
    classes = {p["name"]: p["class"] for p in m["photos"]}
    used = {}
    for s, a in built.items():
        assert a.images.shape == (N, SIZE, SIZE, 3) and a.images.dtype == np.uint8
        assert np.bincount(a.targets, minlength=8).tolist() == [N // 8] * 8
        used[s] = {names[i] for i in a.meta["photo"]}
        assert used[s] <= {n for c in v4.CLASSES for n in v4.split_photos(s)[c]}
        assert [v4.CLASSES[t] for t in a.targets] == [classes[names[i]] for i in a.meta["photo"]]
        for i in range(0, N, 5):  # the image really is that crop of that photograph
            assert np.array_equal(a.images[i], _recrop(names[a.meta["photo"][i]], a.meta["box"][i], a.meta["flip"][i]))
    assert not used["train"] & used["test"] and not used["train"] & used["val"] and not used["val"] & used["test"]
    e = dataset_info("mini4-id")
    assert e.num_classes == 8 and e.splits == SPLITS and e.role == "id"


def test_the_merged_design_maps_each_photograph_to_its_merged_class(tmp_path):
    a = v4.DESIGNS["5"].build("val", 8, 0, 50)
    m = v4.PHOTOS.manifest()
    assert np.bincount(a.targets, minlength=5).tolist() == [10] * 5
    assert [v4.CLASSES_5[t] for t in a.targets] == [v4.MERGE_5[m["photos"][i]["class"]] for i in a.meta["photo"]]


def test_cache_key_carries_the_manifest_digest(tmp_path, monkeypatch):
    build_mini("mini4-id", "val", size=8, n=8, cache_dir=tmp_path)
    (f,) = tmp_path.glob("mini4-id_val_size8_seed0_n8_v*.npz")
    digest = hashlib.sha256((v4.PHOTO_DIR / "manifest.json").read_bytes()).hexdigest()[:12]
    assert f.name.endswith(f"_v4.{v4.BUILDER_VERSION}-8c-{digest}.npz")
    monkeypatch.setattr(v4, "manifest_digest", lambda: "000000000000")
    build_mini("mini4-id", "val", size=8, n=8, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mini4-id_val_size8_seed0_n8_v*.npz"))) == 2


def test_shipped_thumbnails_match_the_manifest_and_the_survey_and_stay_small():
    m = v4.PHOTOS.manifest()
    survey = {c["id"]: c for c in json.loads(CANDIDATES.read_text())["photos"]}
    notice = (v4.PHOTO_DIR / "LICENSES.md").read_text()
    shipped = [p for p in m["photos"] if p.get("file", "").startswith("photos/")]
    assert len(shipped) == 284 and len(list((v4.PHOTO_DIR / "photos").iterdir())) == 284
    for p in m["photos"]:
        if "file" in p:  # v3's reused thumbnails too
            assert hashlib.sha256((v4.PHOTO_DIR / p["file"]).read_bytes()).hexdigest() == p["sha256"], p["name"]
    for p in shipped:
        c = survey[p["name"]]
        assert (p["class"], p["author"], p["license"], p["original_sha256"]) == (
            c["proposed_class"], c["author"], c["license_normalized"], c["sha256"])
        assert c["package"] != "enlightenment-data" and not c.get("ambiguous")
        assert p["source"].startswith(f"Debian package {c['package']} {c['version']}: /{c['path']}")
        assert f"| `{p['file']}` | {p['class']} | {p['author']} | {p['license']} |" in notice
        assert min(p["size"]) == min(256, c["width"], c["height"])           # shrunk to 256, never enlarged
        if p["license"] != "public-domain":
            assert (v4.PHOTO_DIR / "licenses" / f"{p['license']}.txt").stat().st_size > 1000
    assert "public domain" in (v4.PHOTO_DIR / "licenses" / "public-domain.txt").read_text()
    reused = [p for p in m["photos"] if "v3_name" in p]
    assert len(reused) == 39 and not {"lomiri_dragonfly", "mate_ladybird", "palapeli_honey_bee",
                                      "lomiri_free"} & {p["v3_name"] for p in reused}
    total = sum(f.stat().st_size for f in v4.PHOTO_DIR.rglob("*") if f.is_file())
    assert total <= 12 * 2 ** 20                                             # well under the 20 MB


def test_the_shipped_record_is_what_the_maker_writes():
    from study.mini_benchmark import make_v4_photos as make
    m = v4.PHOTOS.manifest()
    survey = json.loads(CANDIDATES.read_text())
    assert [c["id"] for c in make.chosen(survey)] == [p["name"] for p in m["photos"]]
    assert make.attribution(m) == (v4.PHOTO_DIR / "LICENSES.md").read_text()
    text = "Files: *\nLicense: X\n\nLicense: BSD-x\n Redistribution is fine.\n .\n Really.\n\nLicense: Y\n y\n"
    assert make.copyright_paragraph(text, "BSD-x") == "Redistribution is fine.\n\nReally.\n"
    with pytest.raises(DataError, match="no stand-alone 'License: Z'"):
        make.copyright_paragraph(text, "Z")


def test_thumbnails_shrink_large_photographs_and_keep_small_ones(tmp_path):
    from study.mini_benchmark.deb_photos import thumbnail_at_most
    Image.new("RGB", (600, 300), (10, 200, 30)).save(tmp_path / "big.png")
    Image.new("L", (200, 150), 90).save(tmp_path / "small.png")
    assert thumbnail_at_most(tmp_path / "big.png", 256).size == (512, 256)
    small = thumbnail_at_most(tmp_path / "small.png", 256)
    assert small.size == (200, 150) and small.mode == "RGB"


def _rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-2 Qt resource bundle holding ``files`` (path -> (bytes, zlib?)) under one folder ``d``."""
    names, data, offsets = b"", b"", {}

    def name(n: str) -> int:
        nonlocal names
        offsets.setdefault(n, len(names))
        if offsets[n] == len(names):
            names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
        return offsets[n]

    nodes = [struct.pack(">IHII", 0, 2, 1, 1) + b"\0" * 8,                      # root: 1 child at index 1
             struct.pack(">IHII", name("d"), 2, len(files), 2) + b"\0" * 8]    # d: its files from index 2
    for fname, (blob, packed) in files.items():
        stored = struct.pack(">I", len(blob)) + zlib.compress(blob) if packed else blob
        nodes.append(struct.pack(">IHHHI", name(fname), 1 if packed else 0, 0, 0, len(data)) + b"\0" * 8)
        data += struct.pack(">I", len(stored)) + stored
    tree = b"".join(nodes)
    head = 20
    return b"qres" + struct.pack(">IIII", 2, head, head + len(tree), head + len(tree) + len(data)) + tree + data + names


def test_the_qt_resource_reader_returns_every_file_and_rejects_a_broken_bundle():
    from study.mini_benchmark.qt_rcc import read_rcc
    files = {"a.webp": (b"RIFF-raw-bytes", False), "README": (b"License: CC0-1.0\n" * 20, True)}
    assert read_rcc(_rcc(files)) == {"d/a.webp": b"RIFF-raw-bytes", "d/README": b"License: CC0-1.0\n" * 20}
    with pytest.raises(DataError, match="bundle.rcc is not a Qt resource bundle"):
        read_rcc(b"PK\3\4" + bytes(40), "bundle.rcc")
    good = _rcc(files)
    with pytest.raises(DataError, match=r"bundle.rcc is corrupt \(an entry ends at byte \d+, past the end"):
        read_rcc(good[:-3], "bundle.rcc")


def test_a_corrupt_thumbnail_is_one_clear_error_naming_it(tmp_path):
    for folder in ("v3_photos", "v4_photos"):   # v4's manifest points into ../v3_photos too
        shutil.copytree(v4.PHOTO_DIR.parent / folder, tmp_path / folder)
    photos = PhotoSet(tmp_path / "v4_photos", "mini benchmark v4")
    entry = next(p for p in photos.manifest()["photos"] if p["name"].startswith("gcompris_"))
    path = tmp_path / "v4_photos" / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"mini benchmark v4: the photograph .*{entry['name']}\.jpg'? is corrupt"):
        photos.load(entry["name"])
    (tmp_path / "v4_photos" / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"mini benchmark v4: cannot read .*manifest.json.*v4_photos/\)"):
        photos.manifest()


def test_the_v4_benchmark_uses_v2s_outlier_and_ood_sets_and_the_tools_accept_it(capsys):
    b = get_benchmark("v4")
    assert (b.id_set, b.outliers, b.val_outliers) == ("mini4-id", "mini-outliers", "mini-val-outliers")
    assert b.ood_sets == get_benchmark("v2").ood_sets and "mini-svhn" in b.ood_sets
    from oe_core.cli_config import parse_config
    from oe_core.errors import cli_main
    from study.mini import select as mini_select
    assert parse_config(mini_select.SelectConfig, ["--benchmark", "v4"]).benchmark == "v4"
    assert cli_main(mini_select.main, ["--benchmark", "v5"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'v5' (choose from 'v2', 'v3', 'v4')" in err and len(err.strip().splitlines()) == 1
