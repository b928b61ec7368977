"""The CIFAR-10 / CIFAR-100 evaluation node: ``python -m study.paper.cifar_eval cifar10|cifar100 [evaluate options]``
with ``DATA_ROOT`` and ``OUT`` from the environment (``scripts/eval_cifar.sh`` runs it through the graph).

The paper's study from trained runs with the reference protocol (1:5 OOD subsample, 10 trials) on the paper's OOD
suite: MSP of the WRN-40-2 baseline, OE fine-tune and OE from scratch (Table 1/7 and App. C), and for CIFAR-10 the
PixelCNN++ bits/pixel before and after OE (Table 5) and the CIFAR-10 vs SVHN bits/dim study (Figure 2); then the
side-by-side table with the paper's numbers, and every figure, in ``OUT/DATASET_eval``.  A run that is not there
is left out with a note.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from analysis import compare, evaluate, svhn_likelihood
from analysis.figures.__main__ import main as figures_main
from analysis.evaluate import EvaluateConfig
from oe_core.errors import OEError, cli_main
from study.commands import config_argv

from .recipe import eval_name, run_name

# column title, model label, run (model, mode), detector, the paper's key (c10/c100 prefixed)
COLUMNS = (("MSP", "msp", ("wrn", "baseline"), "msp", "wrn-msp-baseline"),
           ("MSP+OE", "msp_oe", ("wrn", "oe_tune"), "msp", "wrn-msp-oe-tune"),
           ("MSP+OE scratch", "msp_oe_scratch", ("wrn", "oe_scratch"), "msp", "wrn-msp-oe-scratch"))
DENSITY_COLUMNS = (("BPP", "pcnn", ("pixelcnn", "baseline"), "bpd", "pixelcnn-bpp-baseline"),
                   ("BPP+OE", "pcnn_oe", ("pixelcnn", "oe_tune"), "bpd", "pixelcnn-bpp-oe"))  # CIFAR-10 only


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip() + "\n\nOptions after the data set go to python -m analysis.evaluate (see its --help).")
        return 0
    if not argv or argv[0] not in ("cifar10", "cifar100"):
        raise OEError("usage: DATA_ROOT=DIR OUT=DIR python -m study.paper.cifar_eval cifar10|cifar100 "
                      "[analysis.evaluate options]")
    ds, extra = argv[0], argv[1:]
    if not os.environ.get("DATA_ROOT"):
        raise OEError("set DATA_ROOT to the folder holding the datasets")
    data, out = os.path.abspath(os.environ["DATA_ROOT"]), Path(os.path.abspath(os.environ.get("OUT") or "runs"))
    ev = out / eval_name(ds)
    key = ds.replace("cifar", "c")
    ckpts, cols, paper, bars = [], [], [], []
    for title, label, (model, mode), det, paper_key in COLUMNS + (DENSITY_COLUMNS if ds == "cifar10" else ()):
        run = out / run_name(ds, model, mode)
        if not run.exists():
            print(f"note: {run} not found; column {title} left out", file=sys.stderr)
            continue
        ckpts.append(f"{label}={run}")
        cols.append(f"{title}={label}:{det}")
        paper.append(f"{title}={key}-{paper_key}")
        bars.append(f"{title}={label}:{det}")
    if not ckpts:
        raise OEError(f"no trained {ds} runs under {out}")
    steps = [(evaluate.main, config_argv(EvaluateConfig, {
                "ckpt": ckpts, "detectors": ["auto"], "id_dataset": ds, "data_root": data, "num_to_avg": 10,
                "out": str(ev)}, always=("ckpt", "detectors", "id_dataset", "data_root", "num_to_avg", "out"))
              + extra),
             (compare.main, ["--results", str(ev / "results.json"), "--columns", *cols, "--paper", *paper,
                             "--out", str(ev / "compare")]),
             (figures_main, ["--results", str(ev / "results.json"), "--out", str(ev / "figures"), "--bars", *bars])]
    if ds == "cifar10" and all((out / run_name(ds, "pixelcnn", m)).exists() for m in ("baseline", "oe_tune")):
        steps.append((svhn_likelihood.main, ["--results", str(ev / "results.json"), "--baseline", "pcnn", "--oe",
                                             "pcnn_oe", "--ood", "svhn", "--out", str(ev / "likelihood")]))
    for step, args in steps:
        rc = step(args)
        if rc:
            return rc
    lik = f"   likelihood: {ev / 'likelihood'}" if (ev / "likelihood").is_dir() else ""
    print(f"tables: {ev / 'compare' / 'compare.md'}   figures: {ev / 'figures'}{lik}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
