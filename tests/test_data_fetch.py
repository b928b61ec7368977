"""``python -m oe_core.data fetch``: against a real HTTP server on 127.0.0.1 serving the published files' formats.

No test touches the internet: every fetch goes to the mirror the tests serve (``--mirror`` or ``$OE_DATA_MIRROR``).
"""
from __future__ import annotations

import json
import os
import shutil
import socket

import numpy as np
import pytest
from torchvision.datasets import CIFAR10, CIFAR100, DTD, SVHN, Places365

from oe_core.data import get_dataset
from oe_core.data.__main__ import main
from oe_core.data.fetch import STAGING, fetchable_names
from oe_core.data.folders import PLACES365_SUBSET
from oe_core.data.sources import EvalSubset
from oe_core.errors import DataError, cli_main
from tests.fetch_mirror import PLACES_NAMES, MirrorServer, write_mirror

PAPER = ["cifar10", "cifar100", "svhn:test", "textures", "places365", "lsun-crop", "lsun-resize", "isun",
         "tinyimages300k"]


@pytest.fixture(autouse=True)
def local_network_only(monkeypatch):
    """Even a broken fetch cannot reach the internet from these tests: only 127.0.0.1 resolves."""
    resolve = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"the test tried to reach {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    work = tmp_path_factory.mktemp("published")
    return {**write_mirror(work / "mirror", work), "folder": work / "mirror"}


@pytest.fixture
def pins(published, monkeypatch):
    """torchvision's pinned md5s (archives, and the files inside that its loaders check) -> the fixture files'."""
    md5 = published["md5"]
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5["cifar-10-python.tar.gz"])
    monkeypatch.setattr(CIFAR100, "tgz_md5", md5["cifar-100-python.tar.gz"])
    monkeypatch.setattr(DTD, "_MD5", md5["dtd-r1.0.1.tar.gz"])
    monkeypatch.setattr(Places365, "_IMAGES_META", {**Places365._IMAGES_META,
                                                     ("val", True): ("val_256.tar", md5["val_256.tar"])})
    svhn = {k: list(v) for k, v in SVHN.split_list.items()}
    svhn["test"][2] = md5["test_32x32.mat"]
    monkeypatch.setattr(SVHN, "split_list", svhn)
    sums = json.loads(published["checksums"].read_text())
    for cls, key in ((CIFAR10, "cifar10"), (CIFAR100, "cifar100")):
        monkeypatch.setattr(cls, "train_list", sums[key]["train_list"])
        monkeypatch.setattr(cls, "test_list", sums[key]["test_list"])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": sums[key]["meta_md5"]})
    monkeypatch.setattr(EvalSubset, "names", lambda self: list(PLACES_NAMES))  # the real list: its own test
    return md5


@pytest.fixture
def server(published):
    with MirrorServer(published["folder"], prefix="/pub/") as srv:
        yield srv


def fetch(root, *names, mirror="", extra=()):
    args = ["fetch", *names, "--data-root", str(root), "--no-progress", *extra]
    return cli_main(main, args + (["--mirror", mirror] if mirror else []))


def test_fresh_fetch_of_the_paper_sets_then_a_green_check(tmp_path, pins, server, capsys):
    root = tmp_path / "data"
    assert fetch(root, *PAPER, mirror=server.url) == 0
    assert sorted(set(server.requests)) == sorted(f"/pub/{n}" for n in pins)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["cifar-10-batches-py", "cifar-100-python", "svhn", "dtd", "places365", "lsun_crop", "lsun_resize", "isun",
         "300K_random_images.npy", "oe-data.lock"])           # no staging folder, no archive left
    sizes = {"cifar10": 8, "cifar100": 8, "svhn": 8, "textures": 8, "places365": len(PLACES_NAMES),
             "lsun-crop": 8, "lsun-resize": 8, "isun": 8, "tinyimages300k": 16}
    for name, n in sizes.items():
        assert len(get_dataset(name, root=root)) == n, name
    assert sorted(p.name for p in (root / "places365").iterdir()) == PLACES_NAMES   # the subset only
    lock = json.loads((root / "oe-data.lock").read_text())
    assert lock["files"]["cifar-10-python.tar.gz"]["pinned"] == "torchvision.datasets.CIFAR10.tgz_md5"
    assert lock["files"]["LSUN.tar.gz"]["pinned"] == ""   # no published hash: recorded at this first fetch
    capsys.readouterr()
    assert cli_main(main, ["--check", "--fetched", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "fetched cifar-10-batches-py: ok" in out and "fetched lsun_crop: ok" in out and "MISSING" not in out


def test_all_paper_names_every_set_with_a_public_source():
    assert sorted(fetchable_names()) == sorted(n.split(":")[0] for n in PAPER)


def test_a_second_fetch_downloads_nothing(tmp_path, pins, server, capsys):
    root = tmp_path / "data"
    assert fetch(root, "cifar10", "lsun-crop", mirror=server.url) == 0
    server.requests.clear()
    capsys.readouterr()
    assert fetch(root, "cifar10", "lsun-crop", mirror=server.url) == 0
    assert server.requests == []
    assert "cifar10: 0 placed, 1 already present, 0 file(s) downloaded" in capsys.readouterr().out


def test_a_transfer_cut_off_midway_leaves_nothing_and_a_rerun_fetches_it(tmp_path, pins, server, capsys):
    root = tmp_path / "data"
    server.cut.add("cifar-10-python.tar.gz")
    assert fetch(root, "cifar10", mirror=server.url, extra=["--retries", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "the transfer of" in err[-1] and "run the same command again" in err[-1]
    assert not (root / "cifar-10-batches-py").exists() and not (root / STAGING).exists()
    with pytest.raises(DataError, match="missing"):
        get_dataset("cifar10", root=root)
    assert fetch(root, "cifar10", mirror=server.url) == 0
    assert len(get_dataset("cifar10", "train", root=root)) == 15


def test_a_cut_transfer_is_retried_within_one_fetch(tmp_path, pins, server):
    server.cut.add("300K_random_images.npy")
    assert fetch(tmp_path, "tinyimages300k", mirror=server.url, extra=["--retries", "1"]) == 0
    assert server.requests.count("/pub/300K_random_images.npy") == 2
    assert len(get_dataset("tinyimages300k", root=tmp_path)) == 16


def test_a_wrong_pinned_checksum_is_refused_and_leaves_nothing(tmp_path, pins, server, monkeypatch, capsys):
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    root = tmp_path / "data"
    assert fetch(root, "cifar10", mirror=server.url, extra=["--retries", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "does not match the pinned hash and was deleted" in err[-1]
    assert list(root.iterdir()) == []


def test_a_source_that_changed_since_its_first_fetch_is_refused(tmp_path, pins, published, capsys):
    folder = tmp_path / "mirror"
    shutil.copytree(published["folder"], folder)
    root = tmp_path / "data"
    with MirrorServer(folder) as srv:
        assert fetch(root, "lsun-crop", mirror=srv.url) == 0
        recorded = json.loads((root / "oe-data.lock").read_text())["files"]["LSUN.tar.gz"]["sha256"]
        shutil.rmtree(root / "lsun_crop")
        (folder / "LSUN.tar.gz").write_bytes((folder / "LSUN_resize.tar.gz").read_bytes())   # another file
        capsys.readouterr()
        assert fetch(root, "lsun-crop", mirror=srv.url, extra=["--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert "does not match the hash recorded in oe-data.lock at its first fetch" in err
    assert not (root / "lsun_crop").exists() and not (root / STAGING).exists()
    assert json.loads((root / "oe-data.lock").read_text())["files"]["LSUN.tar.gz"]["sha256"] == recorded


def test_a_404_is_one_line(tmp_path, pins, server, capsys):
    assert fetch(tmp_path, "svhn:train", mirror=server.url) == 2      # the mirror has only the test split
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"svhn: fetching {server.url}train_32x32.mat" and len(err) == 2
    assert err[1].startswith(f"error: dataset 'svhn': cannot fetch {server.url}train_32x32.mat: HTTP 404; the "
                             "source may have gone")
    assert not (tmp_path / "svhn").exists()


def test_mirror_from_the_environment_and_from_a_local_folder(tmp_path, pins, server, published, monkeypatch, capsys):
    monkeypatch.setenv("OE_DATA_MIRROR", server.url)
    assert fetch(tmp_path / "a", "textures") == 0
    assert server.requests == ["/pub/dtd-r1.0.1.tar.gz"]
    assert fetch(tmp_path / "b", "textures", mirror=str(published["folder"])) == 0   # --mirror wins over the env
    assert server.requests == ["/pub/dtd-r1.0.1.tar.gz"]
    assert len(get_dataset("textures", root=tmp_path / "b")) == 8
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    capsys.readouterr()
    assert fetch(tmp_path / "c", "textures", mirror=str(empty)) == 2    # a file missing from a local mirror
    assert f"error: dataset 'textures': cannot copy {str(empty / 'dtd-r1.0.1.tar.gz')!r}" in capsys.readouterr().err
    assert not (tmp_path / "c" / "dtd").exists()


def test_an_interrupted_unpack_leaves_nothing_and_the_rerun_reuses_the_download(tmp_path, pins, server, monkeypatch):
    import oe_core.data.fetch as fetch_module

    unpack = fetch_module._unpack

    def killed(entry, src, archive, into, progress):
        unpack(entry, src, archive, into, progress)
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_module, "_unpack", killed)
    assert fetch(tmp_path, "textures", mirror=server.url) == 130      # Ctrl-C in the middle of unpacking
    assert not (tmp_path / "dtd").exists()
    assert [p.name for p in (tmp_path / STAGING).iterdir()] == ["dtd-r1.0.1.tar.gz"]   # verified, kept
    monkeypatch.setattr(fetch_module, "_unpack", unpack)
    server.requests.clear()
    assert fetch(tmp_path, "textures", mirror=server.url) == 0
    assert server.requests == [] and len(get_dataset("textures", root=tmp_path)) == 8


def test_a_fetched_set_that_changed_fails_the_check(tmp_path, pins, server, capsys):
    assert fetch(tmp_path, "isun", mirror=server.url) == 0
    victim = next((tmp_path / "isun").rglob("*.jpeg"))
    victim.write_bytes(victim.read_bytes()[:-10])
    capsys.readouterr()
    assert cli_main(main, ["--check", "--fetched", "--data-root", str(tmp_path)]) == 1
    assert "fetched isun: changed since it was fetched" in capsys.readouterr().out
    assert fetch(tmp_path, "isun", mirror=server.url) == 2     # and fetch refuses to build on it


def test_withdrawn_and_unfetchable_sets_are_one_line_before_any_download(tmp_path, server, capsys):
    assert fetch(tmp_path, "cifar10", "tinyimages80m", mirror=server.url) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "withdrawn" in err[0] and "fetch tinyimages300k" in err[0]
    assert fetch(tmp_path, "lsun", mirror=server.url) == 2
    assert "has no public source the suite can fetch; by hand" in capsys.readouterr().err
    assert server.requests == [] and list(tmp_path.iterdir()) == []


def test_the_places365_subset_is_the_documented_draw_and_the_listing_names_it(capsys):
    names = PLACES365_SUBSET.names()                       # checks the shipped list against its sha256
    drawn = np.sort(np.random.default_rng(365).choice(36500, 10000, replace=False) + 1)
    assert names == [f"Places365_val_{i:08d}.jpg" for i in drawn]
    assert main(["--pattern", "places365"]) == 0
    out = capsys.readouterr().out
    assert f"subset: places365-val-10k" in out and PLACES365_SUBSET.sha256 in out
    assert "md5 e27b17d8d44f4af9a78502beb927f808, pinned by torchvision" in out


def test_fetch_usage_errors(tmp_path, capsys):
    assert cli_main(main, ["fetch", "cifar10"]) == 2
    assert "fetch needs --data-root DIR" in capsys.readouterr().err
    assert cli_main(main, ["fetch", "--data-root", str(tmp_path)]) == 2
    assert "fetch needs dataset names or --all-paper" in capsys.readouterr().err
    assert cli_main(main, ["fetch", "svhn:nosuch", "--data-root", str(tmp_path)]) == 2
    assert "has no split 'nosuch'" in capsys.readouterr().err


@pytest.mark.slow
def test_get_data_sh_fetches_from_the_mirror_in_the_environment(tmp_path, published):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "get_data.sh"
    env = {**os.environ, "OE_PYTHON": sys.executable, "DATA_ROOT": str(tmp_path / "data"),
           "OE_DATA_MIRROR": str(published["folder"])}
    proc = subprocess.run(["bash", str(script), "tinyimages300k", "--no-progress"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tinyimages300k: 1 placed" in proc.stdout
    assert (tmp_path / "data" / "300K_random_images.npy").is_file()


def test_a_second_fetch_into_a_busy_data_root_is_one_line(tmp_path, server, capsys):
    import fcntl

    fd = os.open(tmp_path, os.O_RDONLY)          # what a running fetch holds
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert fetch(tmp_path, "tinyimages300k", mirror=server.url) == 2
    finally:
        os.close(fd)
    assert f"another fetch into {str(tmp_path)!r} is running" in capsys.readouterr().err
    assert server.requests == []
    assert fetch(tmp_path, "tinyimages300k", mirror=server.url) == 0     # free again
