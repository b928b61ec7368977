"""The benchmark harness: timing, memory and FLOP accounting, fits, targets, and a --quick run end to end.

No speed is asserted: the quick run checks that every case is measured both ways (the suite and its baseline: the
pclucas14 port's own code for PixelCNN++) and reported consistently.  Tests that run the port skip, with the reason,
where it is not available.
"""
from __future__ import annotations

import json
import math
from dataclasses import fields
from types import SimpleNamespace

import pytest
import torch
from scipy import stats

from benchmarks.cases import CASES
from benchmarks.config import BenchConfig
from benchmarks.flops import flop_counter, matmul_peak
from benchmarks.linearity import linear_fit
from benchmarks.memory import MARK, ProfilerMemoryTracker, peaks_from_events
from benchmarks.port import port_or_skip_reason
from benchmarks.report import noise_warnings
from benchmarks.run import main
from benchmarks.sizes import PROFILES
from benchmarks.targets import TARGETS, check_targets, speedup_targets
from benchmarks.timing import alternate
from benchmarks.workload import FAST, BASE, BenchContext
from oe_core.cli_config import parse_config
from oe_core.errors import cli_main

PORT, WHY = port_or_skip_reason()
needs_port = pytest.mark.skipif(PORT is None, reason=f"pclucas14 port not available: {WHY}")


def _event(name: str, start: int, end: int = 0, nbytes: int = 0) -> SimpleNamespace:
    return SimpleNamespace(name=lambda: name, start_ns=lambda: start, end_ns=lambda: end, nbytes=lambda: nbytes)


def test_peaks_from_events_counts_only_inside_the_range_above_its_start():
    events = [_event("[memory]", 1, nbytes=100),            # before: part of the base
              _event(MARK + "a", 10, 20),
              _event("[memory]", 11, nbytes=50), _event("[memory]", 12, nbytes=30),
              _event("[memory]", 13, nbytes=-50), _event("[memory]", 14, nbytes=10),
              _event("[memory]", 25, nbytes=1000),          # after: ignored
              _event(MARK + "b", 30, 40), _event("[memory]", 31, nbytes=-1190)]
    assert peaks_from_events(events, ["a", "b"]) == {"a": 80, "b": 0}


def test_profiler_tracker_measures_known_allocations():
    tracker = ProfilerMemoryTracker(torch.device("cpu"))
    with tracker.session():
        held = torch.empty(2_000_000)                        # 8 MB, allocated before the measured range
        with tracker.measure("grow"):
            a = torch.empty(1_000_000)                       # +4 MB
            b = torch.empty(500_000)                         # +2 MB -> peak 6 MB above the start
            del a
            c = torch.empty(250_000)
        with tracker.measure("shrink"):
            del held                                         # frees 8 MB, then takes back 4 MB: never above start
            d = torch.empty(1_000_000)
    assert abs(tracker.peaks["grow"] - 6_000_000) < 4096
    assert tracker.peaks["shrink"] < 4096
    del b, c, d


def test_flop_counter_matches_the_convolution_formula():
    x, w = torch.randn(2, 3, 8, 8), torch.randn(5, 3, 3, 3)
    with flop_counter() as counter:
        torch.nn.functional.conv2d(x, w)
    assert counter.get_total_flops() == 2 * 2 * 5 * 6 * 6 * 3 * 3 * 3


def test_matmul_peak_reports_every_size():
    peak = matmul_peak(torch.device("cpu"), torch.float32, (16, 32), repeats=2)
    assert set(peak["by_size"]) == {"16", "32"}
    assert peak["gflops"] == max(peak["by_size"].values()) > 0


def test_linear_fit_agrees_with_scipy():
    n, t = [1, 2, 4, 8], [0.31, 0.52, 0.88, 1.71]
    ref = stats.linregress(n, t)
    fit = linear_fit(n, t)
    assert fit["slope_s_per_image"] == pytest.approx(ref.slope, rel=1e-10)
    assert fit["intercept_s"] == pytest.approx(ref.intercept, rel=1e-10)
    assert fit["r2"] == pytest.approx(ref.rvalue ** 2, rel=1e-10)
    assert fit["per_image_s"] == pytest.approx([0.31, 0.26, 0.22, 0.21375])
    assert linear_fit([1, 2, 3], [2.0, 3.0, 4.0])["r2"] == pytest.approx(1.0)


def test_alternate_reverses_the_order_every_round():
    calls: list[str] = []
    times = alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, lambda: None, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [len(v) for v in times.values()] == [3, 3]


@pytest.mark.parametrize("max_repeats, budget_s, expected", [(5, math.inf, 5), (5, 0.0, 3), (2, 0.0, 2), (1, 0.0, 1)])
def test_alternate_stops_at_the_budget_but_not_before_three_rounds(max_repeats, budget_s, expected):
    times = alternate({"a": lambda: None, "b": lambda: None}, lambda: None, max_repeats, budget_s)
    assert [len(v) for v in times.values()] == [expected, expected]


def test_targets_read_ratios_and_report_missing_cases():
    results = {"cases": {"train_small": {"speedup": 2.5, "memory_ratio": 1.2, "fast": {"images_per_s": 10.0}},
                         "train_paper": {"speedup": 1.1, "fast": {"images_per_s": 2.0, "peak_fraction": 0.7}},
                         "score": {"fast": {"images_per_s": 7.0}}},
               "linearity": {"batch": {"r2": 0.995}}}
    by_name = {t["name"]: t for t in check_targets(results)}
    assert len(by_name) == len(TARGETS) + 2
    assert by_name["train_small.speedup"]["met"] is True and by_name["train_small.speedup"]["threshold"] == 1.6
    assert by_name["train_small.memory_ratio"]["met"] is False
    assert by_name["train_paper.speedup"]["met"] is False
    assert by_name["train_paper.peak_fraction"]["met"] is True
    assert by_name["score.vs_train"]["value"] == pytest.approx(3.5)
    assert by_name["linearity.batch.r2"]["met"] is True
    assert by_name["dmol_loss.speedup"]["value"] is None and by_name["dmol_loss.speedup"]["met"] is None
    # under bf16 the suite's bf16 is held to the higher bars against the port's float32
    bf16 = {t["name"]: t for t in check_targets({**results, "config": {"amp": "bf16"}})}
    assert bf16["train_small.speedup"]["threshold"] == 2.0 and bf16["train_paper.speedup"]["threshold"] == 2.5
    assert bf16["train_small.speedup"]["met"] is True and bf16["train_paper.speedup"]["met"] is False


def _noise_results(load_start, load_end, peaks, spread) -> dict:
    variant = {"spread": spread}
    return {"device_type": "cpu", "load_start": load_start, "matmul_peak": {"runs": [{"gflops": g} for g in peaks]},
            "machine": {"cpu_cores": 2, "torch_threads": 2, "load_average_1_5_15min": load_end},
            "cases": {"score": {FAST: variant, BASE: {"spread": 1.0}}}}


def test_noise_warnings_flag_load_peak_drift_and_scatter():
    assert noise_warnings(_noise_results([0.3, 0.5, 0.5], [2.6, 1.5, 1.0], [180.0, 190.0], 1.1)) == []
    warnings = noise_warnings(_noise_results([1.6, 0.5, 0.5], [3.5, 1.5, 1.0], [80.0, 190.0], 3.0))
    assert len(warnings) == 4
    assert "at the start" in warnings[0] and "at the end" in warnings[1]
    assert "80.0 to 190.0" in warnings[2] and "score/fast" in warnings[3] and "score/plain" not in warnings[3]


@needs_port
def test_dmol_loss_variants_compute_the_same_likelihood():
    ctx = BenchContext(device=torch.device("cpu"), amp="none", sizes=PROFILES["quick"], port=PORT)
    work = CASES.get("dmol_loss").build(ctx)
    fast, port = (float(work.variants[v]()()) for v in (FAST, BASE))
    assert work.baseline == "pclucas14 port"
    assert math.isfinite(fast) and fast == pytest.approx(port, rel=1e-5)


def test_cases_option_selects_in_report_order():
    cfg = parse_config(BenchConfig, ["--cases", "score", "dmol_loss"])
    assert cfg.selected_cases() == ["dmol_loss", "score"]
    assert parse_config(BenchConfig, []).selected_cases() == sorted(CASES.names(), key=lambda n: CASES.get(n).order)


def test_bad_options_are_one_line_errors(capsys):
    assert cli_main(main, ["--cases", "no_such_case"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark case 'no_such_case'" in err and "train_paper" in err
    assert cli_main(main, ["--repeats", "0"]) == 2
    assert "--repeats must be >= 1" in capsys.readouterr().err


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for f in fields(BenchConfig):
        assert "--" + f.name.replace("_", "-") in text


@pytest.mark.slow
@needs_port
def test_quick_run_measures_every_case_both_ways(tmp_path, capsys):
    out, md = tmp_path / "bench.json", tmp_path / "perf.md"
    md.write_text("# Performance\n")
    assert main(["--quick", "--threads", "1", "--repeats", "1", "--json", str(out),
                 "--markdown-append", str(md)]) == 0
    results = json.loads(out.read_text())
    assert set(results["cases"]) == set(CASES.names())
    for name, case in results["cases"].items():
        for variant in (FAST, BASE):
            v = case[variant]
            assert len(v["times_s"]) == case["repeats"] == 1
            assert v["images_per_s"] == pytest.approx(case["images_per_call"] / v["median_s"])
            assert v["spread"] == pytest.approx(1.0)  # one timed call: max == min
            assert v["peak_mem_mb"] > 0
            if name == "dmol_loss":
                assert v["flops_per_call"] == 0 and v["gflops_per_s"] is None
            else:
                assert v["flops_per_call"] > 0
                assert v["peak_fraction"] == pytest.approx(v["gflops_per_s"] / results["matmul_peak"]["gflops"])
        assert case["speedup"] == pytest.approx(case[FAST]["images_per_s"] / case[BASE]["images_per_s"])
        assert case["memory_ratio"] == pytest.approx(case[FAST]["peak_mem_mb"] / case[BASE]["peak_mem_mb"])
        assert ("pclucas14 port" in case["baseline"]) == (name not in ("wrn_oe_step", "diffusion_train",
                                                                      "diffusion_score", "vae_train", "vae_score",
                                                                      "vae_regret"))
    assert results["port"]["dir"] == str(PORT.directory)
    assert results["machine"]["cpu"] and "cpu_flags" in results["machine"]
    # the suite and its baseline count the same convolutions: the same work
    for name in ("train_small", "train_paper", "oe_step", "score", "wrn_oe_step", "diffusion_train", "diffusion_score",
                 "vae_train", "vae_score"):
        assert results["cases"][name][FAST]["flops_per_call"] == results["cases"][name][BASE]["flops_per_call"]
    assert {s: len(results["linearity"][s]["n"]) for s in ("batch", "dataset")} == {"batch": 3, "dataset": 3}
    assert {t["name"] for t in results["targets"]} == {t.name for t in TARGETS + speedup_targets("none")}
    assert all(t["met"] is not None for t in results["targets"])
    assert isinstance(results["warnings"], list)
    stdout, text = capsys.readouterr().out, md.read_text()
    assert text.startswith("# Performance\n\n### ")
    for name in CASES.names():
        assert name in stdout and f"| {name} |" in text
