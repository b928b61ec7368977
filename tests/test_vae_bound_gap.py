"""analysis.bound_gap: the ELBO and a tight IWAE bound of two VAEs on the ID and OOD sets, the table and the
finding."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from analysis import bound_gap
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import cli_main
from oe_core.run import save_checkpoint
from tests.test_glow_detectors import glow_ckpt
from tests.vae_toys import TINY, tiny_vae

ID, OOD = "toy-shapes,size=8,n=12", "gaussian,size=8,n=10"


def vae_ckpt(folder, seed: int):
    model = tiny_vae(seed)
    cfg = {**TINY, "vae_iw_samples": 1, "arch": "vae", "out": str(folder)}
    save_checkpoint(folder, {"kind": "density", "config": cfg, "model": model.state_dict(), "eval_model": None},
                    kind="density", step=1, epoch=1)
    return model.eval()


def test_bound_gap_scores_both_bounds_and_states_where_the_change_went(tmp_path):
    base, oe = vae_ckpt(tmp_path / "base", 0), vae_ckpt(tmp_path / "oe", 1)
    out = tmp_path / "out"
    argv = ["--baseline", str(tmp_path / "base"), "--oe", str(tmp_path / "oe"), "--id-dataset", ID, "--ood", OOD,
            "--k-large", "16", "--device", "cpu", "--batch-size", "5", "--out", str(out), "--no-progress"]
    assert cli_main(bound_gap.main, argv) == 0
    result = json.loads((out / "bound_gap.json").read_text())
    ds = get_dataset("gaussian", split="test", size=8, n=10)
    x = to_unit_range(torch.stack([ds[i][0] for i in range(10)]))
    for label, model in (("baseline", base), ("oe", oe)):
        for k in (1, 16):
            model.iw_samples = k
            with torch.no_grad():
                expected = (-model.log_prob(x).double() / (192 * math.log(2))).numpy()
            got = np.array(result["scores"][f"gaussian:test,n=10,size=8|{label}|{k}"])
            np.testing.assert_allclose(got, expected, rtol=1e-5)
    ids, ood = result["sets"]
    assert ood["oe_change_small"] == pytest.approx((ood["oe_bpd_k1"] - ids["oe_bpd_k1"])
                                                   - (ood["baseline_bpd_k1"] - ids["baseline_bpd_k1"]))
    assert ood["oe_change_large"] == pytest.approx((ood["oe_bpd_k16"] - ids["oe_bpd_k16"])
                                                   - (ood["baseline_bpd_k16"] - ids["baseline_bpd_k16"]))
    assert ood["baseline_gap"] == pytest.approx(ood["baseline_bpd_k1"] - ood["baseline_bpd_k16"])
    text = (out / "bound_gap.md").read_text()
    assert "bpd L_16" in text and "### Finding" in text and result["findings"][0] in text


def test_the_finding_says_which_way_it_came_out():
    assert "mainly widened the gap" in bound_gap.finding("svhn", 0.5, 0.1, 1, 256)         # 80% in the gap
    assert "mainly lowered the outliers' likelihood" in bound_gap.finding("svhn", 0.5, 0.4, 1, 256)
    assert "did not raise" in bound_gap.finding("svhn", -0.1, 0.0, 1, 256)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    vae_ckpt(tmp_path / "base", 0)
    glow_ckpt(tmp_path / "glow", 0)
    common = ["--id-dataset", ID, "--ood", OOD, "--device", "cpu", "--out", str(tmp_path / "o")]
    assert cli_main(bound_gap.main, ["--baseline", str(tmp_path / "base"), "--oe", str(tmp_path / "glow"),
                                     *common]) == 2
    assert "holds a Glow; the bound gap needs a VAE" in capsys.readouterr().err
    assert cli_main(bound_gap.main, ["--baseline", str(tmp_path / "base"), "--oe", str(tmp_path / "base"),
                                     "--k-large", "1", *common]) == 2
    assert "--k-large (1) must exceed --k-small (1)" in capsys.readouterr().err
