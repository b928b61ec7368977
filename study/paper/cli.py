"""``python -m study.reproduce`` (``scripts/reproduce.sh``): the whole paper in one command.

Modes: ``--plan`` (:mod:`.estimates`), ``--local`` (:mod:`.local`), ``--slurm`` (:mod:`.slurm`), ``--status``
(:mod:`.status`) and ``--run-node NODE [OPTIONS]`` (one node, as ``scripts/<experiment>.sh`` run it).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from oe_core.errors import OEError

from .estimates import plan
from .graph import build_graph, find_node, order, select
from .local import run_local, run_node
from .recipe import DENSITY, EXTRA_DENSITY, SCORE_SETS
from .slurm import check_not_busy, load_resources, submit_slurm
from .state import check_data, check_deps_selected, check_not_held, finished, save_graph
from .status import show_status


HELP = """The whole paper in one command, on one machine (--local) or as a SLURM job graph (--slurm).

The run graph (--plan shows it with every command): for CIFAR-10 and CIFAR-100, WRN-40-2 baseline -> OE
fine-tune, and OE from scratch; PixelCNN++ baseline (or --pixelcnn-weights) -> OE fine-tune, each scored
(per-image bits/dim); Glow, a VAE and the diffusion model the same way with --glow, --vae and --diffusion; then the
CIFAR-10 evaluation (MSP and bits/pixel: Table 1/7
and Table 5 beside the paper's numbers, the figures, Figure 2) and the CIFAR-100 evaluation.  Each node is one
of the suite's CLIs with its flags (built from the trainers' config defaults); training nodes resume from their
checkpoints when rerun.  The scripts scripts/<experiment>.sh each run one node (--run-node).
"""


EPILOG = """examples:
  scripts/reproduce.sh --plan --data-root /data --out runs --device cuda --amp bf16
  scripts/reproduce.sh --local --data-root /data --out runs --device cuda --amp bf16 --gpus 4
  scripts/reproduce.sh --slurm --data-root /data --out runs --device cuda --amp bf16 --resources my.toml
  scripts/reproduce.sh --status --out runs
  DATA_ROOT=/data OUT=runs scripts/reproduce.sh --run-node cifar10_wrn_oe_tune --device cuda

exit codes: 0 done; 1 a node failed (its log is named); 2 bad input (one line, nothing run or submitted);
75 interrupted (--local: run the same command again to continue).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/reproduce.sh", description=HELP, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("mode (one of)").add_mutually_exclusive_group(required=True)
    m.add_argument("--plan", action="store_true", help="print the graph in dependency order: each node's command, "
                   "its device-time estimate (measured rates from benchmarks/results, the machine named) and "
                   "whether it is finished in --out; runs nothing")
    m.add_argument("--local", action="store_true", help="run the graph in order on this machine; finished nodes "
                   "are skipped, an interrupted one resumes from its checkpoint; a second --local on the same --out "
                   "continues where the first stopped")
    m.add_argument("--slurm", action="store_true", help="submit one sbatch job per node, each depending on its "
                   "predecessors (--dependency=afterok), with --signal=B:TERM@120 and --requeue; prints the job ids "
                   "and writes them to OUT/.reproduce/slurm_jobs.{txt,json}")
    m.add_argument("--status", action="store_true", help="each node: finished, running, pending, failed (with its "
                   "log) or not started, from --out and, under SLURM, squeue/sacct/scontrol")
    m.add_argument("--run-node", metavar="NODE", help="run one node here, as scripts/<experiment>.sh do "
                   "(--run-node NODE [OPTIONS...]: must come first; every argument after NODE goes to the node's "
                   "tool); DATA_ROOT, OUT (default runs), NPROC (torchrun processes) and SETS (score nodes) come from "
                   "the environment; NODE may also be score_RUN for any run folder under OUT")
    g = p.add_argument_group("where")
    g.add_argument("--data-root", default=os.environ.get("DATA_ROOT", ""),
                   help="folder holding the datasets (default: $DATA_ROOT); checked before anything runs")
    g.add_argument("--out", default=os.environ.get("OUT", "runs"),
                   help="parent folder of every run, score and evaluation (default: $OUT or runs)")
    s = p.add_argument_group("which nodes")
    s.add_argument("--only", nargs="+", default=[], metavar="NODE",
                   help="only these nodes (their predecessors must be finished or selected too)")
    s.add_argument("--skip", nargs="+", default=[], metavar="NODE", help="leave these nodes out")
    for arch in EXTRA_DENSITY:
        s.add_argument(f"--{arch}", action="store_true", help=f"add {DENSITY[arch].title}: baseline -> OE "
                       "fine-tune -> scores, and its evaluation with the CIFAR-10 vs SVHN bits/dim study (beyond the "
                       "paper)")
    s.add_argument("--pixelcnn-weights", default="", metavar="PTH", help="import the pclucas14 port's released "
                   "PixelCNN++ weights (python -m density_oe.port) instead of training the baseline")
    r = p.add_argument_group("how the runs run")
    r.add_argument("--device", default="", help="--device for every training, scoring and evaluation (e.g. cuda, "
                   "cpu; default: each tool's own, auto)")
    r.add_argument("--amp", default="", help="--amp for every training run (e.g. bf16; default: the trainer's)")
    r.add_argument("--gpus", type=int, default=1, help="--local: GPUs per training run; more than 1 runs it "
                   "through torchrun --standalone (the global batches stay the paper's)")
    r.add_argument("--outliers", default="", help="the OE outlier set (default: the trainers' tinyimages80m, "
                   "the paper's; e.g. tinyimages300k)")
    r.add_argument("--score-sets", nargs="+", default=None, metavar="SET",
                   help=f"sets the score nodes score (default: {' '.join(SCORE_SETS)})")
    for name, what in (("wrn", "the six WRN runs (classifiers_oe.train)"),
                       ("pixelcnn", "both PixelCNN++ runs (density_oe.train)"),
                       *((arch, f"both {DENSITY[arch].title} runs (density_oe.train)") for arch in EXTRA_DENSITY),
                       ("score", "the score nodes (density_oe.score)"),
                       ("eval", "the evaluations (analysis.evaluate)")):
        r.add_argument(f"--{name}-args", default="", metavar="'OPTS'",
                       help=f"extra options for {what}, one quoted string (e.g. '--epochs 50')")
    x = p.add_argument_group("SLURM")
    x.add_argument("--resources", default="", metavar="TOML", help="your resources per kind of run, read over "
                   "the documented defaults in scripts/reproduce_resources.toml (GPUs, CPUs, time, partition, ...)")
    e = p.add_argument_group("estimate")
    e.add_argument("--bench", default="", metavar="JSON", help="--plan: the benchmark results to estimate with "
                   "(default: benchmarks/results/*.json of the --device kind and --amp precision)")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def python_exe() -> str:
    return os.environ.get("OE_PYTHON") or sys.executable


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--run-node"]:
        return node_main(argv[1:])
    o = parser().parse_args(argv)
    out = Path(o.out).expanduser().resolve()
    o.out = out
    py = python_exe()
    if o.run_node:
        raise OEError("--run-node must come first (--run-node NODE [options for the node's tool])")
    if o.status:
        return show_status(o, out, py)
    if not o.data_root:
        raise OEError("--data-root is required (or set DATA_ROOT): the folder holding the datasets")
    o.data_root = Path(o.data_root).expanduser().resolve()
    if o.pixelcnn_weights and not Path(o.pixelcnn_weights).is_file():
        raise OEError(f"--pixelcnn-weights {o.pixelcnn_weights!r}: no such file")
    if o.gpus < 1:
        raise OEError("--gpus must be at least 1")
    graph = order(build_graph(o, py))
    sel = select(graph, o.only, o.skip)
    if o.plan:
        return plan(o, graph, sel, out, py)
    if o.slurm and shutil.which("sbatch") is None:
        raise OEError("sbatch not found on PATH: --slurm needs a SLURM login node (or run --local)")
    res = load_resources(o.resources) if o.slurm else {}  # a bad file is one line before anything else
    check_deps_selected(graph, sel, out)
    check_not_held(out)
    check_not_busy(out)
    check_data([n for n in sel if not finished(out, n)], o.data_root)
    out.mkdir(parents=True, exist_ok=True)
    save_graph(out, graph)
    if o.local:
        return run_local(o, sel, out)
    return submit_slurm(res, sel, out, py)


def node_main(argv: list[str]) -> int:
    """``--run-node NODE [OPTIONS...]``: one node of the graph with every family, ``OPTIONS`` appended to its tool's
    command (the tool's own options win), with the settings the scripts take from the environment."""
    if not argv or argv[0].startswith("-"):
        raise OEError("--run-node needs a node name first (scripts/reproduce.sh --plan lists them)")
    name, extra = argv[0], argv[1:]
    if not os.environ.get("DATA_ROOT"):
        raise OEError(f"set DATA_ROOT to the folder holding the datasets (node {name})")
    nproc = os.environ.get("NPROC") or "1"
    if not nproc.isdigit() or int(nproc) < 1:
        raise OEError(f"NPROC must be a positive number of processes, got {nproc!r}")
    o = parser().parse_args(["--local"])
    o.data_root = Path(os.path.abspath(os.environ["DATA_ROOT"]))
    o.out = Path(os.path.abspath(os.environ.get("OUT") or "runs"))
    o.score_sets = os.environ.get("SETS", "").split() or None
    return run_node(find_node(o, python_exe(), name), extra, int(nproc))
