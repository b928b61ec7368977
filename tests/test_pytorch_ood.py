"""pytorch-ood (an optional dependency, in the test extra): its detectors by name in analysis.evaluate, a fitted
one end to end, and the suite's metrics cross-checked against its OODMetrics."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from analysis.score_cache import ScoreCache, ScoreKey
from analysis.datasets import DatasetSpec
from analysis.evaluate import list_detectors, main
from analysis.results import Evaluation
from analysis.cached_scores import stored_scores
from oe_core.data import get_dataset, normalize
from oe_core.detectors import get_detector
from oe_core.errors import cli_main
from oe_core.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr, roc_curve
from tests.test_analysis_evaluate import classifier_ckpt

ID = "toy-shapes,size=8,n=60"
PYTORCH_OOD = ("mahalanobis", "vim", "knn", "odin", "entropy", "react")


def _images_and_labels(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = get_dataset("toy-shapes", split=split, size=8, n=60)
    return torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor([ds[i][1] for i in range(len(ds))])


def test_pytorch_ood_detectors_are_listed_with_their_needs():
    pytest.importorskip("pytorch_ood")
    text = list_detectors()
    for name in PYTORCH_OOD:
        entry = get_detector(name)
        assert entry.source == "pytorch-ood" and not entry.missing and entry.kind == "classifier"
        assert f"\n{name} " in "\n" + text
    assert {n for n in PYTORCH_OOD if get_detector(n).needs_fit} == {"mahalanobis", "vim", "knn", "react"}
    assert get_detector("odin").needs_grad


def test_a_fitted_pytorch_ood_detector_end_to_end(tmp_path, capsys):
    """Mahalanobis through analysis.evaluate: fitted on the ID set's train split, its cached scores equal
    pytorch-ood's own Mahalanobis fitted on the same images; a rerun takes them from the cache, unfitted."""
    pood = pytest.importorskip("pytorch_ood.detector")
    path, net = classifier_ckpt(tmp_path / "clf")
    out = tmp_path / "out"
    argv = ["--ckpt", f"clf={path}", "--detectors", "mahalanobis", "odin", "--id-dataset", ID,
            "--ood", "gaussian,size=8,n=30", "--num-to-avg", "2", "--device", "cpu", "--batch-size", "16",
            "--out", str(out)]
    assert cli_main(main, argv) == 0
    log = capsys.readouterr().out
    assert "clf / mahalanobis: fitting on toy-shapes:train" in log and "odin: fitting" not in log
    ev = Evaluation.load(out / "results.json")
    assert {(r.detector, r.status) for r in ev.rows} == {("mahalanobis", "ok"), ("odin", "ok")}

    x_train, y_train = _images_and_labels("train")
    x_test, _ = _images_and_labels("test")
    encoder = lambda x: net.feature_maps(x).mean(dim=(2, 3))  # noqa: E731
    with torch.no_grad():
        direct = pood.Mahalanobis(encoder).fit_features(encoder(normalize(x_train)), y_train)
        expected = direct.predict(normalize(x_test)).double().numpy()
    got = stored_scores(ev, out / "results.json", "clf", "mahalanobis").id_scores
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

    assert cli_main(main, argv) == 0
    log = capsys.readouterr().out
    assert "fitting" not in log and "(hit)" in log

    # a damaged entry of the fitted detector is recomputed: fitted again on the same set, the same scores
    cache = ScoreCache(out / "score_cache")
    key = ScoreKey("clf", "mahalanobis", DatasetSpec.parse(ID, default_split="test"))
    cache.path(key).write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="damaged score-cache entry"):
        assert cli_main(main, ["--from-results", str(out / "results.json"), "--out", str(tmp_path / "again")]) == 0
    assert "fitting on toy-shapes:train" in capsys.readouterr().out
    np.testing.assert_allclose(cache.read(key).scores, got, rtol=1e-6, atol=1e-6)


def test_metrics_agree_with_pytorch_ood_oodmetrics():
    """AUROC agrees exactly.  FPR95: pytorch-ood takes the first threshold with TPR >= 0.95, the suite's
    ``first_geq`` rule; the paper's (and the suite's default) ``closest`` rule takes the point whose TPR is
    nearest 0.95, which can lie below it.  AUPR: pytorch-ood integrates the precision-recall curve with
    trapezoids, the suite (as the paper, via sklearn) takes the average precision (a step sum) over the same
    points; they differ by up to about a percentage point (more with ties)."""
    metrics = pytest.importorskip("pytorch_ood.metrics")
    rng = np.random.default_rng(0)
    for ties in (False, True):
        s_in, s_out = rng.normal(0.0, 1.0, 700), rng.normal(1.2, 1.0, 300)
        if ties:
            s_in, s_out = np.round(s_in, 1), np.round(s_out, 1)
        m = metrics.OODMetrics()
        m.update(torch.tensor(np.r_[s_in, s_out]), torch.tensor(np.r_[np.zeros(700), -np.ones(300)]).long())
        r = m.compute()
        assert auroc(s_in, s_out) == pytest.approx(r["AUROC"], abs=1e-12)
        assert fpr_at_tpr(s_in, s_out, 0.95, rule="first_geq") == pytest.approx(r["FPR95TPR"], abs=1e-12)
        # the same precision-recall points: trapezoids give pytorch-ood's value, the step sum the suite's
        for (a, b), suite, theirs in (((s_in, s_out), aupr_out, "AUPR-OUT"), ((-s_out, -s_in), aupr_in, "AUPR-IN")):
            c = roc_curve(a, b)
            recall, precision = np.r_[0.0, c.tpr], np.r_[1.0, c.tps / (c.tps + c.fps)]
            trapezoids = np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2)
            assert trapezoids == pytest.approx(r[theirs], abs=1e-12)
            assert suite(s_in, s_out) == pytest.approx(np.sum(np.diff(recall) * precision[1:]), abs=1e-12)
            assert abs(suite(s_in, s_out) - r[theirs]) < 0.02
    # where the rules part: the ROC curve steps from TPR 0.94 (FPR 0) to 0.97 (FPR 0.5, OOD and ID tied at 5)
    s_in, s_out = np.array([-2.0, 0.0, 5.0, 5.0]), np.r_[np.linspace(10, 20, 94), [5.0] * 3, [-1.0] * 3]
    m = metrics.OODMetrics()
    m.update(torch.tensor(np.r_[s_in, s_out]), torch.tensor([0] * 4 + [-1] * 100))
    assert m.compute()["FPR95TPR"] == fpr_at_tpr(s_in, s_out, rule="first_geq") == 0.5
    assert fpr_at_tpr(s_in, s_out, rule="closest") == 0.0   # the paper's rule: TPR 0.94 is nearer 0.95


def test_without_pytorch_ood_the_suite_says_how_to_add_it(tmp_path):
    """pytorch-ood blocked from importing: the suite's own detectors still run; asking for a pytorch-ood one is
    one clear error with the install command."""
    path, _ = classifier_ckpt(tmp_path / "clf")
    code = ("import sys; sys.modules['pytorch_ood'] = None\n"
            "from oe_core.errors import cli_main\nfrom analysis.evaluate import main, list_detectors\n"
            "assert 'NOT INSTALLED' in list_detectors()\n"
            f"args = ['--ckpt', 'clf={path}', '--id-dataset', '{ID}', '--ood', 'gaussian,size=8,n=30', "
            f"'--num-to-avg', '1', '--device', 'cpu', '--out', r'{tmp_path / 'out'}']\n"
            "assert cli_main(main, args + ['--detectors', 'msp']) == 0\n"
            "sys.exit(cli_main(main, args + ['--detectors', 'vim']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("error: detector 'vim' is not available: needs pytorch-ood: pip install")
