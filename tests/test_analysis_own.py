"""A user's own models and data: an image folder as an OOD set (bad images listed, small sets warned), a plain
classifier state dict / whole-model file / torchvision state dict through --ckpt, and the Python API."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from analysis.score_cache import ScoreCache, ScoreKey
from analysis.datasets import DatasetSpec
from analysis.evaluate import evaluate, main
from classifiers_oe.models import build_model
from oe_core.errors import cli_main
from tests.test_analysis_evaluate import classifier_ckpt

ID = "toy-shapes,size=8,n=40"  # 40 ID images: each protocol trial draws 40 // 5 = 8 OOD images


def image_folder(root, n_good: int, bad: tuple[str, ...] = ()):
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    for i in range(n_good):  # any size, any format, nested
        h, w = 10 + i % 7, 12 + i % 5
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / ("sub" if i % 2 else ".") / f"img{i}.{'png' if i % 3 else 'jpg'}")
    for name in bad:
        (root / name).write_bytes(b"this is not an image")
    return root


def _args(tmp_path, *extra):
    return ["--id-dataset", ID, "--num-to-avg", "2", "--device", "cpu", "--out", str(tmp_path / "out"), *extra]


def test_own_folder_evaluates_from_the_command_line(tmp_path, capsys):
    ckpt, _ = classifier_ckpt(tmp_path / "clf")
    folder = image_folder(tmp_path / "mine", 12)
    spec = f"folder,path={folder},size=8"
    assert cli_main(main, _args(tmp_path, "--ckpt", f"clf={ckpt}", "--ood", spec)) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["ood"]["name"] == "folder"
    scores = ScoreCache(tmp_path / "out" / "score_cache").read(ScoreKey("clf", "msp", DatasetSpec.parse(spec)))
    assert scores.scores.shape == (12,)


def test_bad_images_are_all_listed_and_the_set_skipped_or_strict_fails(tmp_path, capsys):
    ckpt, _ = classifier_ckpt(tmp_path / "clf")
    folder = image_folder(tmp_path / "mine", 10, bad=("broken1.png", "sub/broken2.jpg"))
    spec = f"folder,path={folder},size=8"
    assert cli_main(main, _args(tmp_path, "--ckpt", f"clf={ckpt}", "--ood", spec, "blobs,size=8,n=20")) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    skipped = [r for r in doc["rows"] if r["status"] == "missing"]
    assert len(skipped) == 1 and "2 of 12 images cannot be read" in skipped[0]["note"]
    assert "broken1.png" in skipped[0]["note"] and "broken2.jpg" in skipped[0]["note"]
    assert [r["status"] for r in doc["rows"] if r["ood"]["name"] == "blobs"] == ["ok"]
    capsys.readouterr()
    assert cli_main(main, _args(tmp_path, "--ckpt", f"clf={ckpt}", "--ood", spec, "--strict")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken1.png" in err[0] and "broken2.jpg" in err[0], err


def test_a_set_smaller_than_the_trial_subsample_warns(tmp_path):
    ckpt, _ = classifier_ckpt(tmp_path / "clf")
    folder = image_folder(tmp_path / "few", 5)
    with pytest.warns(UserWarning, match="has 5 images, fewer than the 8 each protocol trial draws"):
        assert cli_main(main, _args(tmp_path, "--ckpt", f"clf={ckpt}", "--ood", f"folder,path={folder},size=8")) == 0


def test_own_classifier_files_evaluate_from_the_command_line(tmp_path, capsys):
    ckpt, net = classifier_ckpt(tmp_path / "clf")
    torch.save(net.state_dict(), tmp_path / "plain.pt")                                # architecture from the keys
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "dp.pt")
    torch.save(net, tmp_path / "whole.pt")                                             # a whole saved model
    ood = ["--ood", "gaussian,size=8,n=20"]
    assert cli_main(main, _args(tmp_path, "--ckpt", f"suite={ckpt}", f"plain={tmp_path / 'plain.pt'}",
                                f"opts={tmp_path / 'dp.pt'}:arch=wrn,depth=10,widen=1,classes=4",
                                f"whole={tmp_path / 'whole.pt'}", "--trust-pickle", *ood)) == 0
    cache = ScoreCache(tmp_path / "out" / "score_cache")
    spec = DatasetSpec.parse(ID, default_split="test")
    suite = cache.read(ScoreKey("suite", "msp", spec)).scores
    for label in ("plain", "opts", "whole"):
        np.testing.assert_allclose(cache.read(ScoreKey(label, "msp", spec)).scores, suite, rtol=1e-6)
    # wrong architecture options: one line
    capsys.readouterr()
    assert cli_main(main, _args(tmp_path, "--ckpt", f"x={tmp_path / 'plain.pt'}:arch=wrn,depth=16,widen=1",
                                *ood)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "do not fit the model" in err[0], err
    torch.save({"w": torch.zeros(3)}, tmp_path / "odd.pt")
    assert cli_main(main, _args(tmp_path, "--ckpt", f"x={tmp_path / 'odd.pt'}", *ood)) == 2
    assert "cannot tell the architecture" in capsys.readouterr().err


def test_torchvision_model_by_name_plus_state_dict(tmp_path):
    import torchvision
    net = torchvision.models.get_model("resnet18", weights=None, num_classes=4).eval()
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    assert cli_main(main, _args(tmp_path, "--ckpt", f"tv={tmp_path / 'r18.pt'}:arch=resnet18",
                                "--ood", "gaussian,size=8,n=10", "--limit", "10")) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["status"] for r in doc["rows"]] == ["ok"] and doc["models"][0]["label"] == "tv"


def test_python_api_scores_a_module_and_a_score_function(tmp_path):
    _, net = classifier_ckpt(tmp_path / "clf")
    folder = image_folder(tmp_path / "mine", 12)

    def brightness(x: torch.Tensor) -> torch.Tensor:  # uint8 batch -> one score per image
        return x.float().mean(dim=(1, 2, 3))

    ev = evaluate({"net": net, "bright": brightness}, id_dataset=ID,
                  ood=[f"folder,path={folder},size=8", "gaussian,size=8,n=20"], num_to_avg=2, out=str(tmp_path / "o"),
                  cache_dir=str(tmp_path / "c"))
    assert {(r.model, r.detector) for r in ev.rows} == {("net", "msp"), ("bright", "score")}
    assert all(r.ok for r in ev.rows) and (tmp_path / "o" / "results.md").is_file()
    # the function's scores are what it returns on the images
    from oe_core.data import get_dataset
    ds = get_dataset("toy-shapes", split="test", size=8, n=40)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    got = ScoreCache(tmp_path / "c").read(ScoreKey("bright", "score", DatasetSpec.parse(ID, default_split="test")))
    np.testing.assert_allclose(got.scores, brightness(x).double().numpy())
    bright = [r for r in ev.rows if r.model == "bright" and r.ood["name"] == "gaussian"][0]
    assert 0 <= bright.mean("auroc") <= 1
    with pytest.raises(Exception, match="expected an nn.Module"):
        evaluate({"bad": 3}, id_dataset=ID, ood=["gaussian,size=8,n=20"])


def test_wrn_config_is_inferred_from_keys():
    from classifiers_oe.weights import infer_config
    cfg = infer_config(build_model("wrn", 10, depth=16, widen_factor=2).state_dict())
    assert (cfg.arch, cfg.depth, cfg.widen_factor, cfg.norm) == ("wrn", 16, 2, "batch")
    assert infer_config(build_model("allconv", 10).state_dict()).arch == "allconv"
