"""The paper's run graph (``python -m study.reproduce``, ``scripts/reproduce.sh``): the whole paper in one command.

Each node is one tool of the suite with its options, built from the trainers' own config defaults plus the recipe
in :mod:`.recipe`: WRN-40-2 baseline -> OE fine-tune, and OE from scratch, for CIFAR-10 and CIFAR-100
(``classifiers_oe.train``); PixelCNN++ baseline (or the port's released weights, ``density_oe.port``) -> OE
fine-tune -> per-image bits/dim (``density_oe.train``, ``density_oe.score``), and Glow, a VAE and the diffusion
model the same way with ``--glow``, ``--vae`` and ``--diffusion``; the CIFAR-10 and CIFAR-100 evaluations
(:mod:`.cifar_eval`: reference protocol, the comparison tables with the paper's numbers, the figures, Figure 2).

| module | holds |
|---|---|
| :mod:`.recipe` | what the graph sets beyond the configs' defaults, the sets, the run names |
| :mod:`.graph` | :class:`Node`, :func:`build_graph`, dependency order, selection |
| :mod:`.state` | ``OUT/.reproduce/``: logs, done/failed marks, the saved graph, the lock on ``--out``; data checks |
| :mod:`.estimates` | ``--plan``: the graph, its commands and a device-time estimate from measured rates |
| :mod:`.local` | ``--local`` (the graph in order here) and ``--run-node`` (one node, as the scripts run it) |
| :mod:`.slurm` | ``--slurm``: one sbatch job per node chained with ``afterok``; queue states |
| :mod:`.status` | ``--status`` |
| :mod:`.cli` | the command line |
"""
from .cli import main, parser
from .estimates import estimate_s, pick_benchmark, plan
from .graph import Node, build_graph, find_node, order, select
from .local import local_cmds, run_local, run_node
from .recipe import DENSITY, EXTRA_DENSITY, run_name
from .slurm import job_script, load_resources, submit_slurm
from .state import finished, log_path, mark, out_lock, save_graph, saved_graph, state_dir

__all__ = ["DENSITY", "EXTRA_DENSITY", "Node", "build_graph", "estimate_s", "find_node", "finished", "job_script",
           "load_resources", "local_cmds", "log_path", "main", "mark", "order", "out_lock", "parser",
           "pick_benchmark", "plan", "run_local", "run_name", "run_node", "save_graph", "saved_graph", "select",
           "state_dir", "submit_slurm"]
