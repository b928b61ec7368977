"""The density detectors of ``analysis.evaluate`` on a Glow checkpoint: bits/dim, likelihood ratio, complexity and
the typicality test (fitted on the in-distribution training split)."""
from __future__ import annotations

import math

import numpy as np
import torch

from analysis.datasets import DatasetSpec
from analysis.evaluate import main
from analysis.results import Evaluation
from analysis.cached_scores import stored_scores
from density_oe.glow import Glow, GlowConfig, data_dependent_init
from density_oe.glow.layers import Conv2dZeros
from oe_core.cli_config import config_to_dict
from oe_core.data import get_dataset, to_unit_range
from oe_core.errors import cli_main
from oe_core.run import save_checkpoint

ID = "toy-shapes,size=8,n=40"
OOD = "gaussian,size=8,n=30"


def _images(text: str, split: str = "test") -> torch.Tensor:
    spec = DatasetSpec.parse(text, default_split=split)
    ds = get_dataset(spec.name, split=spec.split, **dict(spec.options))
    return torch.stack([ds[i][0] for i in range(len(ds))])


def glow_ckpt(folder, seed: int):
    torch.manual_seed(seed)
    cfg = GlowConfig(glow_levels=2, glow_steps=1, glow_hidden=4)
    net = Glow(cfg)
    data_dependent_init(net, to_unit_range(_images(ID, "train")))
    with torch.no_grad():  # not the identity-like init
        for m in net.modules():
            if isinstance(m, Conv2dZeros):
                for p in m.parameters():
                    p.normal_(0, 0.05)
    state = {"kind": "density", "config": {**config_to_dict(cfg), "arch": "glow", "out": str(folder)},
             "model": net.state_dict(), "eval_model": None}
    save_checkpoint(folder, state, kind="density", step=1, epoch=1)
    return net.eval()


def bpd(net, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (-net.log_prob(to_unit_range(x)).double() / (x[0].numel() * math.log(2))).numpy()


def test_likelihood_detectors_score_a_glow(tmp_path):
    net, background = glow_ckpt(tmp_path / "glow", 0), glow_ckpt(tmp_path / "bg", 1)
    out = tmp_path / "out"
    argv = ["--ckpt", f"glow={tmp_path / 'glow'}", "--background", str(tmp_path / "bg"), "--detectors", "bpd",
            "likelihood_ratio", "complexity_zlib", "typicality", "typicality_m10", "--id-dataset", ID, "--ood", OOD, "--num-to-avg", "2",
            "--device", "cpu", "--batch-size", "20", "--out", str(out)]
    assert cli_main(main, argv) == 0
    ev = Evaluation.load(out / "results.json")
    x_id = _images(ID)
    got = {d: stored_scores(ev, out / "results.json", "glow", d).id_scores
           for d in ("bpd", "likelihood_ratio", "complexity_zlib", "typicality", "typicality_m10")}
    np.testing.assert_allclose(got["bpd"], bpd(net, x_id), rtol=1e-6)
    np.testing.assert_allclose(got["likelihood_ratio"], bpd(net, x_id) - bpd(background, x_id), rtol=1e-5, atol=1e-6)
    assert np.all(got["complexity_zlib"] < got["bpd"])  # bpd minus a positive compressed length
    h = bpd(net, _images(ID, "train")).mean()                                 # fitted on the ID train split
    np.testing.assert_allclose(got["typicality"], np.abs(bpd(net, x_id) - h), rtol=1e-5, atol=1e-9)
    groups = np.abs(bpd(net, x_id).reshape(-1, 10).mean(1) - h)              # 40 test images, scoring batch 20
    np.testing.assert_allclose(got["typicality_m10"], np.repeat(groups, 10), rtol=1e-5, atol=1e-9)
