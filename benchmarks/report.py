"""The results as a text table (stdout) and as a markdown section (``--markdown-append``)."""
from __future__ import annotations

from typing import Optional

from .workload import FAST, BASE


def _gflops(run: dict) -> str:
    return "/".join(f"{g:.1f}" for g in run["by_size"].values())


def _num(value: Optional[float], fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def case_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, case in results["cases"].items():
        for variant in (FAST, BASE):
            v = case[variant]
            is_fast = variant == FAST
            rows.append([
                name if is_fast else "", "density_oe" if is_fast else case.get("baseline", variant), _num(v["images_per_s"], ".2f"), _num(1e3 * v["median_s"], ".1f"),
                _num(v["spread"], ".2f"),
                _num(v["peak_mem_mb"], ".1f"), _num(v["gflops_per_s"], ".1f"),
                _num(None if v["peak_fraction"] is None else 100 * v["peak_fraction"], ".0f"),
                _num(case["speedup"], ".2f") + "x" if is_fast else "",
                _num(case["memory_ratio"], ".2f") if is_fast else ""])
    return rows


CASE_HEADER = ["case", "variant", "images/s", "ms/call", "max/min", "peak MB", "GFLOP/s", "% peak", "speed f/b",
               "mem f/b"]
TARGET_HEADER = ["target", "value", "need", "met"]
LINEAR_HEADER = ["series", "n", "seconds", "ms/image", "slope ms/image", "overhead ms", "R^2"]


def target_rows(results: dict) -> list[list[str]]:
    met = {True: "yes", False: "NO", None: "not run"}
    return [[t["text"], _num(t["value"], ".3f"), f"{t['op']} {t['threshold']:g}", met[t["met"]]]
            for t in results["targets"]]


def linearity_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, s in results.get("linearity", {}).items():
        rows.append([f"{name}: {s['what']}", " ".join(map(str, s["n"])), " ".join(f"{t:.3f}" for t in s["seconds"]),
                     " ".join(f"{1e3 * t:.1f}" for t in s["per_image_s"]), f"{1e3 * s['slope_s_per_image']:.2f}",
                     f"{1e3 * s['intercept_s']:.1f}", f"{s['r2']:.4f}"])
    return rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    line = lambda r: "| " + " | ".join(c.replace("|", "/") for c in r) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows])


SPREAD_NOISY = 1.5       # slowest / fastest timed call of one variant
PEAK_DRIFT = 0.15        # relative difference of the matmul peak at the start and at the end
BUSY_LOAD = 0.5          # 1-minute load average per core


def noise_warnings(results: dict) -> list[str]:
    """Signs that other work disturbed the run: load on the machine, a matmul peak that moved, scattered calls."""
    warnings = []
    m = results["machine"]
    cores = m["cpu_cores"] or 1
    own = m["torch_threads"] if results["device_type"] == "cpu" else 1   # the run's own share of the end load
    for when, load, mine in (("start", results["load_start"], 0), ("end", m["load_average_1_5_15min"], own)):
        if load and load[0] - mine > BUSY_LOAD * cores:
            warnings.append(f"1-minute load average {load[0]} at the {when} on {cores} cores (this run's own "
                            f"threads: {mine}): other processes were running")
    rates = [r["gflops"] for r in results["matmul_peak"]["runs"]]
    if max(rates) > (1 + PEAK_DRIFT) * min(rates):
        warnings.append(f"the matmul peak moved from {rates[0]:.1f} to {rates[-1]:.1f} GFLOP/s during the run")
    noisy = [f"{name}/{v}" for name, case in results["cases"].items() for v in (FAST, BASE)
             if case[v]["spread"] > SPREAD_NOISY]
    if noisy:
        warnings.append(f"timed calls scattered by more than {SPREAD_NOISY}x (max/min): {', '.join(noisy)}")
    return warnings


def summary_lines(results: dict) -> list[str]:
    m, cfg, peak = results["machine"], results["config"], results["matmul_peak"]
    accelerator = (f"{m['accelerator']} ({m['accelerator_memory_gb']} GB, CUDA {m['cuda']}); "
                   if "accelerator" in m else "")
    lines = [f"machine: {accelerator}{m['cpu']}, {m['cpu_cores']} cores, torch {m['torch']} ({m['torch_threads']} "
             f"threads), {m['os']}",
             f"run: device {m['device']}, amp {cfg['amp']}, profile {results['profile']}, channels_last "
             f"{cfg['channels_last']}, up to {cfg['repeats']} timed calls per variant after 1 warm-up, "
             f"{results['wall_s']:.0f} s in all, {results['date_utc']}",
             f"load average (1/5/15 min): at start {results['load_start']}, at end {m['load_average_1_5_15min']}",
             f"{peak['dtype']} matmul peak: {peak['gflops']:.1f} GFLOP/s (the better of the start and the end of the "
             f"run; sizes {', '.join(map(str, peak['sizes']))}: {' and '.join(map(_gflops, peak['runs']))})"]
    return lines


def text_report(results: dict) -> str:
    parts = summary_lines(results) + [f"WARNING: {w}" for w in results["warnings"]]
    parts += ["", text_table(CASE_HEADER, case_rows(results))]
    if results.get("linearity"):
        parts += ["", text_table(LINEAR_HEADER, linearity_rows(results))]
    parts += ["", text_table(TARGET_HEADER, target_rows(results))]
    return "\n".join(parts)


def markdown_section(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    title = f"### {m.get('accelerator') or m['cpu']} -- {m['device']}, amp {cfg['amp']}, {results['date_utc']}"
    details = "\n".join(f"| {c} | {results['cases'][c]['detail']} |" for c in results["cases"])
    lines = summary_lines(results) + [f"**warning: {w}**" for w in results["warnings"]]
    parts = [title, "", "\n".join(f"- {line}" for line in lines), "",
             markdown_table(CASE_HEADER, case_rows(results)), "",
             "| case | work per call |\n|---|---|\n" + details]
    if results.get("linearity"):
        parts += ["", markdown_table(LINEAR_HEADER, linearity_rows(results))]
    parts += ["", markdown_table(TARGET_HEADER, target_rows(results))]
    return "\n".join(parts) + "\n"
