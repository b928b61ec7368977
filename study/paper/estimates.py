"""The ``--plan`` view: the graph in dependency order with each node's commands and a device-time estimate from
the measured rates in ``benchmarks/results`` (the images a node processes come from the trainers' configs, so the
epochs are the configs' own)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

from .graph import ROOT, Node
from .state import checkpoint_note, finished


BENCH_DIR = ROOT / "benchmarks" / "results"


def pick_benchmark(device: str, amp: str, path: Optional[str]) -> tuple[Optional[dict], str]:
    """The measured rates to estimate with: ``--bench FILE``, else benchmarks/results/*.json matching the device
    kind and precision (GPU results when --device cuda and there are any)."""
    if path:
        return json.loads(Path(path).read_text()), str(path)
    files = sorted(BENCH_DIR.glob("*.json"))
    found = []
    for f in files:
        with contextlib.suppress(OSError, ValueError):
            found.append((f, json.loads(f.read_text())))
    want = "cuda" if (device or "").startswith("cuda") else "cpu"
    bf16 = (amp or "none") in ("bf16", "auto")
    kind = [x for x in found if x[1].get("device_type", "cpu") == want] or [x for x in found
                                                                         if x[1].get("device_type") == "cpu"]
    if not kind:
        return None, ""
    best = sorted(kind, key=lambda x: ("quick" in x[0].name, "compile" in x[0].name, ("bf16" in x[0].name) != bf16,
                                       x[0].name))[0]
    return best[1], str(best[0].relative_to(ROOT))


def machine_words(bench: dict) -> str:
    m = bench.get("machine", {})
    if bench.get("device_type") == "cuda":
        what = f"GPU {m.get('accelerator') or 'unnamed'}"
    else:
        what = f"CPU {m.get('cpu', '?')}, {m.get('cpu_cores', '?')} cores"
    amp = bench.get("config", {}).get("amp", "none")
    return f"{what}, {'float32' if amp in ('none', None) else amp}, {bench.get('date_utc', '')[:10]}".rstrip(", ")


def estimate_s(node: Node, bench: Optional[dict]) -> Optional[float]:
    if not node.estimate or bench is None:
        return None
    case, images = node.estimate
    c = bench.get("cases", {}).get(case, {})
    rate = (c.get("fast") or {}).get("images_per_s")
    return images / rate if rate else None


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "n/a"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def plan(o, graph: list[Node], sel: list[Node], out: Path, py: str) -> int:
    bench, bench_file = pick_benchmark(o.device, o.amp, o.bench or None)
    want_gpu = (o.device or "").startswith("cuda")
    print(f"The paper's run graph: {len(sel)} of {len(graph)} nodes, in dependency order")
    print(f"  out: {out}   data root: {o.data_root}   python: {py}")
    if bench is None:
        print("  estimates: no measured rates in benchmarks/results (scripts/bench.sh, scripts/bench_gpu.sh)")
    else:
        note = ""
        if want_gpu and bench.get("device_type") != "cuda":
            note = " -- no GPU measurement there yet (scripts/bench_gpu.sh writes one); a GPU is much faster"
        print(f"  estimates: device time at the paper's sizes on one device, from measured rates in {bench_file} "
              f"({machine_words(bench)}){note}")
    print()
    total, unknown = 0.0, 0
    for i, n in enumerate(sel, 1):
        est = estimate_s(n, bench)
        done = finished(out, n)
        if est is not None and not done:
            total += est
        elif est is None and not done:
            unknown += 1
        state = "finished" if done else "not finished" + checkpoint_note(n)
        after = ", ".join(n.deps) if n.deps else "-"
        print(f"{i:2d}. {n.name}  [{n.kind}]  after: {after}  est: {fmt_time(est)}  {state}")
        print(f"    {n.title}")
        for c in n.display(py):
            print(f"    $ {c}")
    fin = sum(finished(out, n) for n in sel)
    print()
    print(f"finished in {out}: {fin} of {len(sel)}; device time left: {fmt_time(total)}"
          + (f" (+ {unknown} nodes without a measured rate)" if unknown else "")
          + " (the sum; under --slurm independent nodes run at the same time)")
    return 0
