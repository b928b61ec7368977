"""study.mini.select: candidates scored on validation data only (mini-id val, held-out outlier pictures,
the paper's App. A sets), never on the test OOD sets."""
from __future__ import annotations

import numpy as np

from study.mini import select as mini_select


def test_app_a_sets_are_built_from_the_given_images():
    x = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    sets = mini_select.app_a_sets(x)
    assert set(sets) == {"uniform noise", "pair means", "jigsaw", "speckle", "pixelate", "inverted"}
    assert all(v.shape == x.shape and v.dtype == np.uint8 for v in sets.values())
    assert np.array_equal(sets["inverted"], 255 - x)
    assert np.array_equal(np.sort(sets["jigsaw"].reshape(6, -1), 1), np.sort(x.reshape(6, -1), 1))


def test_select_trains_and_scores_candidates_on_validation_sets_only(tmp_path, monkeypatch):
    monkeypatch.setenv("OE_CACHE", str(tmp_path / "cache"))
    seen = []
    from study.mini_benchmark import sets as mini
    real = mini.build_mini

    def spy(name, split, **kw):
        seen.append((name, split))
        return real(name, split, **kw)

    monkeypatch.setattr(mini, "build_mini", spy)
    table = mini_select.run_select(mini_select.SelectConfig(
        candidates=["1@0.01"], epochs=1, size=8, depth=10, width=1, n_val=20, limit_steps=2, amp="none",
        work=str(tmp_path / "w"), out=str(tmp_path / "table.md")))
    assert (tmp_path / "table.md").read_text() == table
    assert "| baseline (1 epochs) |" in table and "| OE 1 epochs, lr 0.01 |" in table
    assert "mini-val-outliers" in table and "jigsaw" in table
    # scored on validation splits; besides them only what the trainer reads (mini-id train, and test for its
    # accuracy log; the OE outliers): no test OOD set is ever built
    assert {("mini-id", "val"), ("mini-val-outliers", "val")} <= set(seen)
    assert set(seen) <= {("mini-id", "train"), ("mini-id", "val"), ("mini-id", "test"), ("mini-outliers", "train"),
                         ("mini-val-outliers", "val")}


def test_presets_fine_tune_the_classifier_with_the_validated_schedule():
    """The presets' classifier OE schedules are the ones study.mini.select chose on validation sets (docs/mini_benchmark.md, "How
    the mini benchmark is built"): the candidate with the best validation mean AUROC among those no longer than the
    preset's own baseline (the paper fine-tunes 10 epochs after 100), at lr 0.01."""
    from study.mini.presets import PRESETS
    schedule = {name: (p.cls_epochs, p.cls_oe_epochs, p.cls_oe_lr) for name, p in PRESETS.items()}
    assert schedule["default"] == (5, 4, 0.01)
    assert schedule["full"] == (10, 8, 0.01)
    assert all(oe <= base for base, oe, _ in schedule.values())


def test_the_study_passes_the_preset_schedule_to_the_classifier_runs(tmp_path, monkeypatch):
    import pytest

    from study.mini import study as mini_study
    calls = []

    class Stop(Exception):
        pass

    def record(self, name, module, main, argv):
        if module != "classifiers_oe.train":
            raise Stop
        calls.append(argv)

    monkeypatch.setattr(mini_study.Study, "run", record)
    with pytest.raises(Stop):
        mini_study.run_study(mini_study.StudyConfig(out=str(tmp_path), preset="full", device="cpu"))
    base, oe = calls
    assert base[base.index("--mode") + 1] == "baseline" and base[base.index("--epochs") + 1] == "10"
    assert oe[oe.index("--mode") + 1] == "oe_tune"
    assert oe[oe.index("--epochs") + 1] == "8" and oe[oe.index("--lr") + 1] == "0.01"
