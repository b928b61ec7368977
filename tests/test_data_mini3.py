"""Mini benchmark v3: whole photographs held out per split, determinism, balance, shipped licences, versions.

Crops are recomputed independently from the shipped thumbnails with PIL, so a builder whose metadata lied about
which photograph an image came from would fail here.
"""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from oe_core.data import dataset_info, get_dataset
from oe_core.errors import ConfigError, DataError
from study.mini_benchmark.sets import build_mini
from study.mini_benchmark.v3 import CLASSES, split_photos
from study.mini_benchmark.v3_manifest import PHOTO_DIR, SPLITS, load_manifest, load_v3_photo, photo_splits
from study.mini_benchmark.versions import BENCHMARKS, DEFAULT_BENCHMARK, get_benchmark

SIZE, N = 16, 60


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mini3_cache")
    return {s: build_mini("mini3-id", s, size=SIZE, seed=0, n=N, cache_dir=cache) for s in SPLITS}


def test_every_photograph_is_in_exactly_one_split_and_each_split_has_every_class():
    m = load_manifest()
    names = [p["name"] for p in m["photos"]]
    assert len(names) == len(set(names)) == 43
    per_split = {s: [n for c in CLASSES for n in split_photos(s)[c]] for s in SPLITS}
    together = [n for s in SPLITS for n in per_split[s]]
    assert sorted(together) == sorted(names)              # none lost, none in two splits
    for s in SPLITS:
        assert all(len(split_photos(s)[c]) >= (3 if s != "train" else 8) for c in CLASSES)
    assert photo_splits(m) == photo_splits(load_manifest())  # fixed, not drawn per call


def _recrop(name: str, box: np.ndarray, flip: bool) -> np.ndarray:
    img = Image.fromarray(load_v3_photo(name))
    t = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=tuple(float(v) for v in box),
                              reducing_gap=3.0))
    return t[:, ::-1] if flip else t


def test_built_splits_draw_only_their_own_photographs(built):
    names = [p["name"] for p in load_manifest()["photos"]]
    classes = {p["name"]: p["class"] for p in load_manifest()["photos"]}
    used = {}
    for s, a in built.items():
        used[s] = {names[i] for i in a.meta["photo"]}
        allowed = {n for c in CLASSES for n in split_photos(s)[c]}
        assert used[s] <= allowed
        assert [CLASSES[t] for t in a.targets] == [classes[names[i]] for i in a.meta["photo"]]
        for i in range(0, N, 7):  # the image really is that crop of that photograph
            assert np.array_equal(a.images[i], _recrop(names[a.meta["photo"][i]], a.meta["box"][i], a.meta["flip"][i]))
    assert not used["train"] & used["test"] and not used["train"] & used["val"] and not used["val"] & used["test"]


def test_shapes_dtypes_and_class_balance(built, tmp_path):
    for s, a in built.items():
        assert a.images.shape == (N, SIZE, SIZE, 3) and a.images.dtype == np.uint8
        assert a.targets.dtype == np.int64
        assert np.bincount(a.targets, minlength=3).tolist() == [N // 3] * 3
        assert 0.25 < a.meta["flip"].mean() < 0.75                     # mirrored with p=0.5
    e = dataset_info("mini3-id")
    assert e.num_classes == 3 and e.splits == SPLITS and not e.needs_root and e.role == "id"
    ds = get_dataset("mini3-id", "val", size=8, n=5, cache_dir=str(tmp_path))
    x, y = ds[0]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 8, 8) and 0 <= int(y) < 3


def test_deterministic_per_seed_with_the_same_held_out_photographs(built, tmp_path):
    again = build_mini("mini3-id", "test", size=SIZE, seed=0, n=N, cache_dir=tmp_path / "fresh")
    assert np.array_equal(again.images, built["test"].images) and np.array_equal(again.targets, built["test"].targets)
    other = build_mini("mini3-id", "test", size=SIZE, seed=1, n=N, cache_dir=tmp_path / "fresh")
    assert not np.array_equal(other.images, again.images)
    names = [p["name"] for p in load_manifest()["photos"]]
    held_out = {n for c in CLASSES for n in split_photos("test")[c]}
    assert {names[i] for i in other.meta["photo"]} <= held_out


def test_cache_key_changes_with_the_shipped_photographs(tmp_path, monkeypatch):
    import study.mini_benchmark.v3 as mini3
    build_mini("mini3-id", "val", size=8, n=3, cache_dir=tmp_path)
    (f,) = tmp_path.glob("mini3-id_val_size8_seed0_n3_v*.npz")
    assert mini3.manifest_digest() in f.name and f"v3.{mini3.BUILDER_VERSION}-" in f.name
    monkeypatch.setattr(mini3, "manifest_digest", lambda: "000000000000")
    build_mini("mini3-id", "val", size=8, n=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mini3-id_val_size8_seed0_n3_v*.npz"))) == 2


def test_shipped_set_has_its_licences_attribution_and_stays_small():
    m = load_manifest()
    notice = (PHOTO_DIR / "LICENSES.md").read_text()
    shipped = [p for p in m["photos"] if "file" in p]
    assert len(shipped) == 38
    for p in shipped:
        data = (PHOTO_DIR / p["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"]
        assert p["author"] and p["license"] and p["source"].startswith("Debian package ")
        assert f"| `{p['file']}` | {p['class']} | {p['author']} | {p['license']} |" in notice
    for text in ("GPL-2", "GPL-3", "LGPL-3", "CC0-1.0"):
        assert (PHOTO_DIR / "licenses" / f"{text}.txt").stat().st_size > 1000
    assert "creativecommons.org/licenses/by-sa/4.0" in notice and "creativecommons.org/licenses/by/4.0" in notice
    total = sum(f.stat().st_size for f in PHOTO_DIR.rglob("*") if f.is_file())
    assert total <= 20 * 2 ** 20
    assert {p["bundled"] for p in m["photos"] if "bundled" in p} == {"flower", "china", "coffee", "rocket",
                                                                     "motorcycle"}


def test_a_corrupt_or_missing_photograph_is_one_clear_error(tmp_path):
    folder = tmp_path / "photos_copy"
    shutil.copytree(PHOTO_DIR, folder)
    name = next(p for p in load_manifest(folder)["photos"] if "file" in p)
    path = folder / name["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"photo.*is corrupt \(SHA-256 differs"):
        load_v3_photo(name["name"], folder)
    (folder / "manifest.json").write_text(json.dumps({"classes": ["a"], "photos": [{"name": "x", "class": "b"}]}))
    with pytest.raises(DataError, match=r"manifest.json'? is corrupt"):
        load_manifest(folder)
    with pytest.raises(DataError, match="cannot read .*manifest.json"):
        load_manifest(tmp_path / "nowhere")


def test_benchmark_versions_and_a_bad_name(tmp_path, capsys):
    assert DEFAULT_BENCHMARK == "v2" and get_benchmark("v2").id_set == "mini-id"
    v3 = get_benchmark("v3")
    assert v3.id_set == "mini3-id" and v3.outliers == "mini-outliers" and "mini-svhn" in v3.ood_sets
    for b in BENCHMARKS.values():  # every set each version names is registered, in the role it plays
        assert dataset_info(b.id_set).role == "id" and dataset_info(b.outliers).role == "outlier"
        assert all(dataset_info(s) for s in b.ood_sets)
    with pytest.raises(ConfigError, match="unknown mini benchmark 'v9'; known: v2, v3, v4"):
        get_benchmark("v9")
    from study.mini import study as mini_study
    from oe_core.errors import cli_main
    assert cli_main(mini_study.main, ["--benchmark", "v9", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "argument --benchmark: invalid choice: 'v9' (choose from 'v2', 'v3', 'v4')" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("benchmark, id_set", [("v3", "mini3-id"), ("v4", "mini4-id"), ("v2", "mini-id")])
def test_the_study_trains_and_scores_on_the_chosen_version(tmp_path, monkeypatch, benchmark, id_set):
    from study.mini import study as mini_study
    calls = []

    class Stop(Exception):
        pass

    def record(self, name, module, main, argv):
        if module == "analysis.compare":
            raise Stop
        calls.append((module, argv))

    monkeypatch.setattr(mini_study.Study, "run", record)
    kw = {} if benchmark == "v2" else {"benchmark": benchmark}  # v2 is the default
    with pytest.raises(Stop):
        mini_study.run_study(mini_study.StudyConfig(out=str(tmp_path), preset="tiny", device="cpu", **kw))
    trains = [a for m, a in calls if m.endswith(".train")]
    assert len(trains) == 4 and all(a[a.index("--dataset") + 1] == id_set for a in trains)
    # both OE fine-tunes use the OE set, never the validation OOD set the design was chosen on
    tunes = [a for a in trains if a[a.index("--mode") + 1] == "oe_tune"]
    assert len(tunes) == 2 and all(a[a.index("--outliers") + 1] == "mini-outliers" for a in tunes)
    density_baseline = next(a for m, a in calls if m == "density_oe.train" and "baseline" in a)
    assert density_baseline[density_baseline.index("--track-ood") + 1] == "mini-svhn"   # the trajectory
    ev = next(a for m, a in calls if m == "analysis.evaluate")
    assert ev[ev.index("--id-dataset") + 1].startswith(f"{id_set}:test,")


def test_the_shipped_manifest_is_what_the_maker_writes(tmp_path):
    """make_v3_photos's table is the record of what was taken: names, classes, authors and licences agree with
    the shipped manifest, and its attribution file is the shipped LICENSES.md."""
    from PIL import Image as PILImage

    from study.mini_benchmark import make_v3_photos as make
    m = load_manifest()
    shipped = {p["name"]: p for p in m["photos"] if "file" in p}
    assert list(shipped) == [s.name for s in make.SHIPPED]
    for s in make.SHIPPED:
        p = shipped[s.name]
        assert (p["class"], p["author"], p["license"]) == (s.cls, s.author, s.license)
        assert p["source"].endswith(f": /{s.path}") and f"package {s.package} " in p["source"]
        assert min(p["size"]) == m["side"] == 256
    assert {p["name"]: p["class"] for p in m["photos"] if "bundled" in p} == make.BUNDLED
    assert make.attribution(m) == (PHOTO_DIR / "LICENSES.md").read_text()
    PILImage.new("RGB", (300, 120), (10, 200, 30)).save(tmp_path / "wide.png")
    thumb = make.thumbnail(tmp_path / "wide.png", 64)
    assert thumb.size == (160, 64) and thumb.mode == "RGB"      # whole photo, aspect kept, shorter side 64


@pytest.mark.parametrize("benchmark, id_set", [("v3", "mini3-id"), ("v4", "mini4-id")])
def test_mini_select_chooses_on_the_chosen_versions_validation_sets(tmp_path, monkeypatch, benchmark, id_set):
    from study.mini import select as mini_select
    from classifiers_oe import train as cls_train
    from study.mini_benchmark import sets as mini
    seen, argvs = [], []
    real = mini.build_mini
    monkeypatch.setattr(mini, "build_mini", lambda name, split, **kw: seen.append((name, split)) or real(
        name, split, **{**kw, "cache_dir": tmp_path}))
    monkeypatch.setattr(cls_train, "main", lambda argv: argvs.append(argv) or 0)
    row = {"acc": 50.0, "mean": (50.0, 50.0), **{k: (50.0, 50.0) for k in
                                                 ["mini-val-outliers", "uniform noise", "pair means", "jigsaw",
                                                  "speckle", "pixelate", "inverted"]}}
    monkeypatch.setattr(mini_select, "score", lambda *a, **k: row)
    table = mini_select.run_select(mini_select.SelectConfig(benchmark=benchmark, candidates=["1@0.01"], size=8,
                                                            n_val=12, work=str(tmp_path / "w")))
    assert set(seen) == {(id_set, "val"), ("mini-val-outliers", "val")}        # never a test split
    assert all(a[a.index("--dataset") + 1] == id_set for a in argvs)
    assert argvs[1][argvs[1].index("--outliers") + 1] == "mini-outliers"
    assert table.startswith(f"MSP on validation data ({id_set} val vs validation OOD sets")


def test_the_held_out_photographs_are_the_documented_ones():
    """docs/mini_benchmark.md ("Version 3", "The set") names v3's test photographs; the split rule shared with
    version 4 (photo_manifest.photo_splits) must keep them."""
    assert split_photos("test") == {"plants": ["mate_blinds", "mate_raindrops", "mate_twowings"],
                                    "landscapes": ["lomiri_aitzgorri", "lomiri_bridge", "plasma_kite"],
                                    "objects": ["lomiri_wine", "motorcycle", "rocket"]}
