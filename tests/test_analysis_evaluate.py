"""``analysis.evaluate`` on tiny checkpoints in the run engine's format: both model kinds, the cache, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analysis.score_cache import ScoreCache, ScoreKey
from analysis.datasets import DatasetSpec
from analysis.evaluate import main
from analysis.results import Evaluation
from analysis.cached_scores import stored_scores
from classifiers_oe.config import ClassifierConfig
from classifiers_oe.models import build_model
from classifiers_oe.logits import msp_score
from density_oe.pixelcnn.dmol import log_prob
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from oe_core.cli_config import config_to_dict
from oe_core.data import get_dataset, normalize, to_unit_range
from oe_core.errors import cli_main
from oe_core.run import save_checkpoint

ID = "toy-shapes,size=8,n=40"
OOD = ["gaussian,size=8,n=30", "blobs,size=8,n=30", "textures"]


def classifier_ckpt(folder, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ClassifierConfig(arch="wrn", depth=10, widen_factor=1, dropout=0.0, dataset="toy-shapes", out=str(folder))
    net = build_model("wrn", 4, depth=10, widen_factor=1, dropout=0.0)
    state = {"kind": "classifier", "config": config_to_dict(cfg), "model": net.state_dict()}
    return save_checkpoint(folder, state, kind="classifier", step=1, epoch=1), net.eval()


def density_ckpt(folder, seed: int = 0):
    torch.manual_seed(seed)
    mcfg = PixelCNNConfig(nr_resnet=1, nr_filters=4, nr_logistic_mix=1, dropout=0.0)
    net = PixelCNNpp(mcfg)
    state = {"kind": "density", "config": {**config_to_dict(mcfg), "out": str(folder)}, "model": net.state_dict(),
             "eval_model": None}
    return save_checkpoint(folder, state, kind="density", step=1, epoch=1), net.eval()


def _images(text: str) -> torch.Tensor:
    spec = DatasetSpec.parse(text, default_split="test")
    ds = get_dataset(spec.name, split=spec.split, **dict(spec.options))
    return torch.stack([ds[i][0] for i in range(len(ds))])


def _args(tmp_path, *extra):
    return ["--id-dataset", ID, "--ood", *OOD, "--num-to-avg", "2", "--device", "cpu", "--batch-size", "16",
            "--out", str(tmp_path / "out"), *extra]


def test_both_kinds_end_to_end_with_cache_reuse_and_staleness(tmp_path, capsys):
    clf_path, clf_net = classifier_ckpt(tmp_path / "clf")
    dens_path, dens_net = density_ckpt(tmp_path / "dens")
    argv = _args(tmp_path, "--ckpt", f"clf={clf_path}", f"pcnn={tmp_path / 'dens'}",
                 "--detectors", "msp", "energy", "bpd", "complexity_zlib")
    assert cli_main(main, argv) == 0
    out = capsys.readouterr().out
    assert out.count("(new)") == 4 * 3 and "textures:test: skipped" in out

    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    groups = {(r["model"], r["detector"]) for r in doc["rows"]}
    assert groups == {("clf", "msp"), ("clf", "energy"), ("pcnn", "bpd"), ("pcnn", "complexity_zlib")}
    missing = [r for r in doc["rows"] if r["status"] == "missing"]
    assert {r["display"] for r in missing} == {"Textures"} and all("--data-root" in r["note"] for r in missing)
    assert {m["kind"] for m in doc["models"]} == {"classifier", "density"}

    # the cached scores are the models' scores on the right images with the right input scaling
    cache = ScoreCache(tmp_path / "out" / "score_cache")
    x_id, x_noise = _images(ID), _images(OOD[0])
    with torch.no_grad():
        id_msp = msp_score(clf_net(normalize(x_id))).double().numpy()
        raw_msp = msp_score(clf_net(to_unit_range(x_noise))).double().numpy()
        normalized_msp = msp_score(clf_net(normalize(x_noise))).double().numpy()
        v = to_unit_range(x_id)
        id_bpd = (-log_prob(dens_net(v), v) / (3 * 64 * np.log(2))).double().numpy()
    np.testing.assert_allclose(cache.read(ScoreKey("clf", "msp", DatasetSpec.parse(ID, "test"))).scores, id_msp,
                               rtol=1e-6)
    noise = cache.read(ScoreKey("clf", "msp", DatasetSpec.parse(OOD[0]))).scores
    np.testing.assert_allclose(noise, raw_msp, rtol=1e-6)  # noise is fed raw, as in the reference
    assert not np.allclose(noise, normalized_msp, rtol=1e-6)
    np.testing.assert_allclose(cache.read(ScoreKey("pcnn", "bpd", DatasetSpec.parse(ID, "test"))).scores, id_bpd,
                               rtol=1e-5)

    # second run: every score comes from the cache, tables are identical
    md = (tmp_path / "out" / "results.md").read_text()
    assert cli_main(main, argv) == 0
    out = capsys.readouterr().out
    assert out.count("(hit)") == 12 and "(new)" not in out
    assert (tmp_path / "out" / "results.md").read_text() == md

    # retrained classifier: its entries are stale and recomputed; the density model's are reused
    classifier_ckpt(tmp_path / "clf", seed=1)
    with pytest.warns(UserWarning, match="digest changed"):
        assert cli_main(main, argv) == 0
    out = capsys.readouterr().out
    assert out.count("stale: checkpoint digest changed") == 6 and out.count("(hit)") == 6
    assert (tmp_path / "out" / "results.md").read_text() != md


def test_likelihood_ratio_with_background_and_auto_detectors(tmp_path, capsys):
    dens_path, _ = density_ckpt(tmp_path / "dens")
    bg_path, _ = density_ckpt(tmp_path / "bg", seed=3)
    argv = _args(tmp_path, "--ckpt", f"pcnn={dens_path}", "--detectors", "likelihood_ratio")
    assert cli_main(main, argv) == 2
    assert "needs --background" in capsys.readouterr().err
    assert cli_main(main, argv + ["--background", str(bg_path)]) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["detector"] for r in doc["rows"]} == {"likelihood_ratio"}
    meta = ScoreCache(tmp_path / "out" / "score_cache").read(
        ScoreKey("pcnn", "likelihood_ratio", DatasetSpec.parse(ID, "test"))).meta
    assert meta["digest"] == f"{doc['models'][0]['digest']}+{doc['settings']['background']}"
    results = tmp_path / "out" / "results.json"
    g = stored_scores(Evaluation.load(results), results, "pcnn", "likelihood_ratio")  # digests line up
    assert len(g.id_scores) == 40 and set(g.ood) == {"Gaussian", "Blobs"}
    capsys.readouterr()
    assert cli_main(main, _args(tmp_path, "--ckpt", str(dens_path))) == 0  # auto: the paper's bpd; label = folder
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {(r["model"], r["detector"]) for r in doc["rows"]} == {("dens", "bpd")}


def test_checkpoint_errors_are_one_line(tmp_path, capsys):
    dens_path, _ = density_ckpt(tmp_path / "dens")
    assert cli_main(main, _args(tmp_path, "--ckpt", f"a={tmp_path / 'nope.pt'}")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(main, _args(tmp_path, "--ckpt", f"a={dens_path}", "--detectors", "msp")) == 2
    assert "detector 'msp' scores classifier models, but none was given" in capsys.readouterr().err
    assert cli_main(main, _args(tmp_path, "--ckpt", f"a={dens_path}", f"a={dens_path}")) == 2
    assert "used twice" in capsys.readouterr().err
    assert cli_main(main, _args(tmp_path, "--ckpt", f"a={dens_path}", "--strict")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'textures'") and err.count("\n") == 1
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(dens_path.read_bytes()[:200])
    assert cli_main(main, _args(tmp_path, "--ckpt", f"a={corrupt}")) == 2
    assert "corrupt" in capsys.readouterr().err
