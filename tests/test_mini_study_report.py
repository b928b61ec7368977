"""The mini-study report's findings, stated from hand-made results: yes, no and below chance."""
from __future__ import annotations

from dataclasses import asdict

import pytest

from analysis.results import Evaluation, SetResult
from analysis.svhn_likelihood import LikelihoodRow
from study.mini.report import findings

SETS = ("mini-svhn", "mini-svhn-saturated", "gaussian")


def evaluation(aurocs: dict[tuple[str, str], list[float]]) -> Evaluation:
    """An evaluation whose (model, detector) groups have the given mean AUROC per OOD set (in SETS order)."""
    rows = [SetResult(model, det, {"name": name}, name, protocol={"mean": {"auroc": a}, "std": {"auroc": 0.0}})
            for (model, det), values in aurocs.items() for name, a in zip(SETS, values)]
    return Evaluation({"num_to_avg": 2, "ratio": 5}, [], rows)


def likelihood(base: tuple[float, float, float], oe: tuple[float, float, float]) -> dict:
    """(id mean bpd, ood mean bpd, auroc) for pcnn and pcnn_oe, as svhn_likelihood writes them."""
    return {"rows": [asdict(LikelihoodRow(f"{title} ({label})", i, o, i, 0.25, a))
                     for title, label, (i, o, a) in (("BPP", "pcnn", base), ("BPP+OE", "pcnn_oe", oe))]}


def by_question(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key = line.split("?**")[0].split("**")[-1]
        out[key] = line
    return out


def test_failure_shown_fixed_by_oe_and_oe_raises_both_detectors():
    ev = evaluation({("clf", "msp"): [0.70, 0.72, 0.80], ("clf_oe", "msp"): [0.90, 0.91, 0.99],
                     ("pcnn", "bpd"): [0.30, 0.60, 0.90], ("pcnn_oe", "bpd"): [0.70, 0.80, 0.95]})
    got = by_question(findings(ev, {"pixelcnn": likelihood((3.10, 2.90, 0.30), (3.12, 3.50, 0.70))}))
    a = got["(a) Does the baseline density model find the SVHN-like digits more likely than its own test images"]
    assert "?** Yes: mean 2.900 bits/dim on mini-svhn vs 3.100 on the in-distribution test set" in a
    assert "AUROC of bpd as the OOD score 30.0% (below chance)" in a and "This is the paper's" in a
    fix = got["(a, after OE) Does OE fix it"]
    assert "?** Yes: after OE fine-tuning mean 3.500 bits/dim on mini-svhn vs 3.120" in fix
    assert "AUROC 30.0% -> 70.0%" in fix
    msp = got["(b) Does OE raise the mean AUROC of the classifier (MSP)"]
    assert "?** Yes: 74.0% -> 93.3% over 3 OOD sets" in msp and "below chance" not in msp
    bpd = got["(b) Does OE raise the mean AUROC of the density model (bpd)"]
    assert "?** Yes: 60.0% -> 81.7% over 3 OOD sets" in bpd
    drive = next(line for line in got.values() if line.startswith("**What drives the failure (PixelCNN++):**"))
    assert "bpd-AUROC 60.0% against 30.0%" in drive


def test_no_failure_no_fix_and_oe_lowering_auroc_are_reported_as_no():
    ev = evaluation({("clf", "msp"): [0.80, 0.80, 0.80], ("clf_oe", "msp"): [0.70, 0.70, 0.70],
                     ("pcnn", "bpd"): [0.65, 0.65, 0.65], ("pcnn_oe", "bpd"): [0.65, 0.65, 0.65]})
    got = by_question(findings(ev, {"pixelcnn": likelihood((3.00, 3.20, 0.65), (3.00, 2.95, 0.45))}))
    a = got["(a) Does the baseline density model find the SVHN-like digits more likely than its own test images"]
    assert "?** No: mean 3.200 bits/dim" in a and "(above chance)" in a
    assert "does not show at this scale" in a
    assert "?** No: after OE" in got["(a, after OE) Does OE fix it"]
    assert "?** No: 80.0% -> 70.0%" in got["(b) Does OE raise the mean AUROC of the classifier (MSP)"]
    assert "?** No: 65.0% -> 65.0%" in got["(b) Does OE raise the mean AUROC of the density model (bpd)"]


def test_mean_and_rank_disagreeing_is_reported_as_partly():
    """A Glow run gave the digits a higher mean bits/dim than the test images (5.157 vs 5.121) while 74% of them were
    more likely than the median test image (AUROC 41.6%): neither Yes nor No, and the line says which measure
    shows it."""
    ev = evaluation({("pcnn", "bpd"): [0.45] * 3, ("pcnn_oe", "bpd"): [0.6] * 3})
    got = by_question(findings(ev, {"pixelcnn": likelihood((3.10, 3.20, 0.42), (3.10, 3.30, 0.45))}))
    a = got["(a) Does the baseline density model find the SVHN-like digits more likely than its own test images"]
    assert "?** Partly: mean 3.200 bits/dim on mini-svhn vs 3.100" in a and "(below chance)" in a
    assert "By rank the failure shows (AUROC below chance), by the mean bits/dim it does not" in a
    assert "This is the paper's" not in a and "does not show at this scale" not in a
    fix = got["(a, after OE) Does OE fix it"]
    assert "?** Partly: after OE fine-tuning mean 3.300 bits/dim on mini-svhn vs 3.100" in fix
    assert "By the mean bits/dim the fix shows, by rank it does not (AUROC not above chance)" in fix


def test_a_baseline_below_chance_is_called_out():
    ev = evaluation({("clf", "msp"): [0.40, 0.45, 0.35], ("clf_oe", "msp"): [0.60, 0.60, 0.60]})
    lines = findings(ev, {"pixelcnn": {"rows": []}})
    assert len(lines) == 1
    assert lines[0].startswith("**(b) Does OE raise the mean AUROC of the classifier (MSP)?** Yes: 40.0% -> 60.0%")
    assert "The baseline is below chance" in lines[0]


@pytest.mark.parametrize("missing", ["pcnn_oe", "clf_oe"])
def test_questions_without_both_models_are_left_out(missing):
    groups = {("clf", "msp"): [0.7] * 3, ("clf_oe", "msp"): [0.9] * 3, ("pcnn", "bpd"): [0.6] * 3,
              ("pcnn_oe", "bpd"): [0.8] * 3}
    ev = evaluation({k: v for k, v in groups.items() if k[0] != missing})
    lik = likelihood((3.1, 2.9, 0.3), (3.1, 3.5, 0.7))
    if missing == "pcnn_oe":
        lik["rows"] = lik["rows"][:1]
    text = "\n".join(findings(ev, {"pixelcnn": lik}))
    if missing == "pcnn_oe":
        assert "Does OE fix it" not in text and "density model (bpd)" not in text
        assert "classifier (MSP)?** Yes" in text
    else:
        assert "classifier (MSP)" not in text and "density model (bpd)?** Yes" in text


def test_classifier_finding_quotes_fpr95_test_accuracy_and_the_sets_where_oe_does_not_help(tmp_path):
    import json
    rows = [SetResult(m, "msp", {"name": name}, name, protocol={"mean": {"auroc": a, "fpr95": f},
                                                                 "std": {"auroc": 0.0, "fpr95": 0.0}})
            for m, values in (("clf", [(0.80, 0.60), (0.90, 0.40), (0.70, 0.50)]),
                              ("clf_oe", [(0.95, 0.20), (0.85, 0.45), (0.90, 0.30)]))
            for name, (a, f) in zip(SETS, values)]
    ev = Evaluation({"num_to_avg": 2, "ratio": 5}, [], rows)
    for run, err in (("clf", 2.0), ("clf_oe", 3.5)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "metrics.json").write_text(json.dumps([{"epoch": 1, "test_error": err}]))
    line = findings(ev, {}, tmp_path)[0]
    assert "?** Yes: 80.0% -> 90.0%" in line
    assert "Mean FPR95 50.0% -> 31.7% (lower with OE" in line
    assert "Test accuracy 98.0% -> 96.5%" in line
    assert line.endswith("OE lowers the MSP AUROC on: mini-svhn-saturated.")
