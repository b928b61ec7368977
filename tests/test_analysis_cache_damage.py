"""A damaged score-cache entry (truncated, zeroed, one flipped bit, scores that fail their checksum) is set aside
with a one-line warning and recomputed by every reader: evaluate --ckpt, --cached, --from-results, figures."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.score_cache import DamagedEntry, ScoreCache, ScoreKey, read_entry
from analysis.datasets import DatasetSpec
from analysis.evaluate import main as evaluate_main
from analysis.figures.__main__ import main as figures_main
from oe_core.errors import cli_main
from tests.test_analysis_evaluate import classifier_ckpt
from tests.test_analysis_tables import write_scores

ID = "toy-shapes,size=8,n=40"
OOD = "gaussian,size=8,n=30"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def zero(path):
    path.write_bytes(bytes(path.stat().st_size))


def flip_bit(path):
    """Flip one bit inside the stored scores (the zip member's CRC-32 no longer matches)."""
    data = bytearray(path.read_bytes())
    scores = read_entry(path).scores
    at = bytes(data).index(scores.astype("<f8").tobytes()) + 8 * (len(scores) // 2) + 3
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def wrong_checksum(path):
    """A well-formed entry whose scores were changed after its checksum was stored."""
    entry = read_entry(path)
    buf = io.BytesIO()
    np.savez(buf, scores=entry.scores + 1.0, meta=np.array(json.dumps(entry.meta)))
    path.write_bytes(buf.getvalue())


DAMAGE = {"truncated": truncate, "zeroed": zero, "bit-flipped": flip_bit, "checksum": wrong_checksum}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_read_names_the_damage(tmp_path, damage):
    cache = ScoreCache(tmp_path)
    key = ScoreKey("clf", "msp", DatasetSpec.parse(OOD))
    cache.save(key, np.linspace(0, 1, 30), "d")
    DAMAGE[damage](cache.path(key))
    expected = {"truncated": "unreadable", "zeroed": "unreadable: zeroed", "bit-flipped": "unreadable",
                "checksum": "do not match their stored checksum"}[damage]
    with pytest.raises(DamagedEntry, match=expected):
        cache.read(key)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One evaluation of a tiny classifier checkpoint; tests copy its output folder."""
    root = tmp_path_factory.mktemp("ev")
    classifier_ckpt(root / "clf")
    argv = ["--ckpt", f"clf={root / 'clf'}", "--id-dataset", ID, "--ood", OOD, "--num-to-avg", "2",
            "--device", "cpu", "--out", str(root / "out")]
    assert cli_main(evaluate_main, argv) == 0
    return root, argv


def _copy(evaluated, tmp_path):
    import shutil
    root, argv = evaluated
    shutil.copytree(root / "out", tmp_path / "out")
    argv = [a.replace(str(root / "out"), str(tmp_path / "out")) for a in argv]
    return tmp_path / "out", argv


READERS = {
    "evaluate --ckpt": lambda out, argv: (evaluate_main, argv),
    "evaluate --cached": lambda out, argv: (evaluate_main, ["--cached", "clf", "--id-dataset", ID, "--ood", OOD,
                                                             "--num-to-avg", "2", "--out", str(out)]),
    "evaluate --from-results": lambda out, argv: (evaluate_main, ["--from-results", str(out / "results.json"),
                                                                   "--out", str(out)]),
    "figures": lambda out, argv: (figures_main, ["--results", str(out / "results.json"), "--formats", "png",
                                                 "--dpi", "20"]),
}


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "bit-flipped"])
@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_heals_a_damaged_entry(evaluated, tmp_path, capsys, reader, damage):
    out, argv = _copy(evaluated, tmp_path)
    cache = ScoreCache(out / "score_cache")
    key = ScoreKey("clf", "msp", DatasetSpec.parse(OOD))
    good = cache.read(key).scores
    results = (out / "results.json").read_bytes()
    DAMAGE[damage](cache.path(key))
    bad = cache.path(key).read_bytes()
    main, args = READERS[reader](out, argv)
    with pytest.warns(UserWarning, match="damaged score-cache entry"):
        assert cli_main(main, args) == 0
    np.testing.assert_array_equal(cache.read(key).scores, good)          # recomputed, the same scores
    assert cache.path(key).with_suffix(".npz.damaged").read_bytes() == bad  # set aside, not deleted
    if reader in ("evaluate --ckpt", "evaluate --from-results"):
        assert (out / "results.json").read_bytes() == results
    elif reader == "evaluate --cached":  # a cache-only run: same protocol values
        before, after = (json.loads(r)["rows"] for r in (results, (out / "results.json").read_bytes()))
        assert [r["protocol"] for r in after] == [r["protocol"] for r in before]


def test_warning_is_one_line_on_the_command_line(evaluated, tmp_path, capsys):
    out, argv = _copy(evaluated, tmp_path)
    cache = ScoreCache(out / "score_cache")
    zero(cache.path(ScoreKey("clf", "msp", DatasetSpec.parse(OOD))))
    r = subprocess.run([sys.executable, "-m", "analysis.evaluate", "--from-results", str(out / "results.json"),
                        "--out", str(out)], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[1])
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 0 and len(err) == 1 and err[0].startswith("warning: damaged score-cache entry") and "zeroed" in err[0], err


def test_cache_only_model_cannot_heal_without_a_checkpoint(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_scores(tmp_path / "c", "clf", "msp", {"cifar10": rng.normal(size=50), "svhn": rng.normal(1, 1, 20)})
    key = ScoreKey("clf", "msp", DatasetSpec.parse("svhn"))
    cache = ScoreCache(tmp_path / "c")
    truncate(cache.path(key))
    with pytest.warns(UserWarning, match="damaged"):
        rc = cli_main(evaluate_main, ["--cached", "clf", "--cache-dir", str(tmp_path / "c"), "--ood", "svhn",
                                      "--strict", "--num-to-avg", "2", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "set aside" in err[0] and "--ckpt clf=CHECKPOINT" in err[0], err
    assert not cache.path(key).exists() and cache.path(key).with_suffix(".npz.damaged").exists()
