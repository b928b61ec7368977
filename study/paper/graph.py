"""The paper's run graph: each node one tool of the suite with its options, built from the tools' own configs.

A node's command is the trainer's (or evaluator's) config defaults plus what :mod:`study.paper.recipe` says
differs (:func:`study.commands.config_argv`), then the options of ``--wrn-args`` and the like.  The scripts in
``scripts/`` run these nodes (``python -m study.reproduce --run-node NODE``), so a script cannot drift from the
graph.
"""
from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from oe_core.errors import OEError
from study.commands import config_argv, resolve, run_argv, tool_cmd

from .recipe import (DENSITY, EXTRA_DENSITY, MODE_WORDS, OOD_SETS, PRETTY, SCORE_SETS, SET_IMAGES, TEST_SPLIT_SETS,
                     TRAIN_IMAGES, WRN_MODES, eval_name, run_name, score_name)


ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


@dataclass
class Node:
    name: str
    kind: str                       # resource kind (the sections of reproduce_resources.toml)
    title: str
    deps: list[str]
    cmds: list[list[str]]           # commands run one after the other (argv lists)
    env: dict[str, str]             # environment of the commands
    outputs: list[str]              # paths that exist once the node is finished
    run_folder: str = ""            # training nodes: the run folder (finished when its epochs are done)
    module: str = ""                # training nodes: the module torchrun starts (cmds[0] is PY -m module ARGS)
    datasets: list[list[str]] = field(default_factory=list)  # [name, split] pairs the node reads
    estimate: list = field(default_factory=list)              # [benchmark case, images] or []
    extra_to: str = "first"         # --run-node: options given after the node go to the first command or "each"

    def display(self, py: str) -> list[str]:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        out = []
        for c in self.cmds:
            argv = ["python" if a == py else a for a in c]
            argv = [os.path.relpath(a, ROOT) if a.startswith(str(SCRIPTS)) else a for a in argv]
            out.append((env + " " if env else "") + shlex.join(argv))
        return out

    def with_extra(self, extra: list[str]) -> list[list[str]]:
        """The commands with ``extra`` appended where the node takes options (:attr:`extra_to`)."""
        return [c + extra if self.extra_to == "each" or i == 0 else c for i, c in enumerate(self.cmds)]


class _Graph:
    """Builds the nodes of one ``build_graph`` call from the CLI's options ``o``."""

    def __init__(self, o: argparse.Namespace, py: str):
        # the trainers' configs, imported here: --help and --status need none of them (nor torch)
        from classifiers_oe.config import ClassifierConfig
        from density_oe.config import DensityConfig
        from density_oe.score import ScoreConfig

        self.classifier_cfg, self.density_cfg, self.score_cfg = ClassifierConfig, DensityConfig, ScoreConfig
        self.o, self.py = o, py
        self.out, self.data = str(o.out), str(o.data_root)
        self.dev = ["--device", o.device] if o.device else []
        self.amp = ["--amp", o.amp] if o.amp else []
        self.outl = ["--outliers", o.outliers] if o.outliers else []
        self.outlier_set = o.outliers or ClassifierConfig.outliers
        self.nodes: list[Node] = []

    def train(self, name: str, kind: str, title: str, module: str, cls, values: dict, recipe: dict,
              extra: list[str], deps: list[str], case: str) -> None:
        run = f"{self.out}/{name}"
        values = {**values, "data_root": self.data, "out": run, **recipe}
        argv = run_argv(cls, values) + extra
        cfg = resolve(cls, argv)    # as the trainer will read it: epochs and batches from its config
        per_step = (cfg.batch_size + cfg.oe_batch_size) / cfg.batch_size if cfg.mode != "baseline" else 1
        sets = [[cfg.dataset, "train"], [cfg.dataset, "test"]]
        sets += [[self.outlier_set, "train"]] if cfg.mode != "baseline" else []
        self.nodes.append(Node(name, kind, title, deps, [tool_cmd(self.py, module, argv)], {}, [run],
                               run_folder=run, module=module, datasets=sets,
                               estimate=[case, round(cfg.epochs * TRAIN_IMAGES * per_step)] if case else []))

    def score(self, run: str, title: str, case: str, deps: list[str]) -> Node:
        sets = list(self.o.score_sets or SCORE_SETS)
        extra = self.dev + shlex.split(self.o.score_args)
        cmds = [tool_cmd(self.py, "density_oe.score", config_argv(self.score_cfg, {
            "ckpt": f"{self.out}/{run}", "dataset": s, "split": "test" if s in TEST_SPLIT_SETS else "",
            "data_root": self.data, "out": f"{self.out}/scores/{run}/{s}.npy"},
            always=("ckpt", "dataset", "data_root", "out")) + extra) for s in sets]
        return Node(score_name(run), "score", f"{title} per-image bits/dim ({run})", deps, cmds, {},
                    [f"{self.out}/scores/{run}/{s}.npy" for s in sets], datasets=[_with_split(s) for s in sets],
                    estimate=[case, sum(SET_IMAGES.get(s, 10000) for s in sets)] if case else [],
                    extra_to="each")

    def classifiers(self) -> None:
        wrn_x = shlex.split(self.o.wrn_args)
        for ds in ("cifar10", "cifar100"):
            for mode in WRN_MODES:
                values = {"mode": mode, "dataset": ds}
                deps = []
                if mode == "oe_tune":
                    values["init"] = f"{self.out}/{run_name(ds, 'wrn', 'baseline')}"
                    deps = [run_name(ds, "wrn", "baseline")]
                extra = (self.outl if mode != "baseline" else []) + self.dev + self.amp + wrn_x
                self.train(run_name(ds, "wrn", mode), f"wrn_{mode}", f"WRN-40-2 {MODE_WORDS[mode]} on {PRETTY[ds]}",
                           "classifiers_oe.train", self.classifier_cfg, values, {}, extra, deps, "wrn_oe_step")

    def density(self, arch: str) -> None:
        fam = DENSITY[arch]
        xargs = shlex.split(getattr(self.o, f"{arch}_args"))
        base, tune = run_name("cifar10", arch, "baseline"), run_name("cifar10", arch, "oe_tune")
        if arch == "pixelcnn" and self.o.pixelcnn_weights:
            self.nodes.append(Node(base, "pixelcnn_port", "PixelCNN++: import the port's released weights", [],
                                   [tool_cmd(self.py, "density_oe.port", ["--src", str(self.o.pixelcnn_weights),
                                                                          "--out", f"{self.out}/{base}"])],
                                   {}, [f"{self.out}/{base}/checkpoint.pt"]))
        else:
            self.train(base, f"{arch}_baseline", f"{fam.title} baseline on CIFAR-10", "density_oe.train",
                       self.density_cfg, {"arch": arch, "mode": "baseline", "dataset": "cifar10"}, fam.baseline,
                       self.dev + self.amp + xargs, [], fam.train_case)
        self.train(tune, f"{arch}_oe_tune", f"{fam.title} OE fine-tune", "density_oe.train", self.density_cfg,
                   {"arch": arch, "mode": "oe_tune", "dataset": "cifar10", "init": f"{self.out}/{base}"},
                   fam.oe_tune, self.outl + self.dev + self.amp + xargs, [base], fam.train_case)
        for run in (base, tune):
            self.nodes.append(self.score(run, fam.title, fam.score_case, [run]))

    def cifar_eval(self, ds: str) -> None:
        deps = [run_name(ds, "wrn", m) for m in WRN_MODES]
        if ds == "cifar10":
            deps += [run_name("cifar10", "pixelcnn", m) for m in ("baseline", "oe_tune")]
        ev = f"{self.out}/{eval_name(ds)}"
        eval_images = sum(SET_IMAGES.values())
        self.nodes.append(Node(
            eval_name(ds), "eval", f"{PRETTY[ds]} evaluation, tables with the paper's numbers, "
            + ("figures, Figure 2" if ds == "cifar10" else "figures"), deps,
            [tool_cmd(self.py, "study.paper.cifar_eval", [ds, *self.dev, *shlex.split(self.o.eval_args)])],
            {"DATA_ROOT": self.data, "OUT": self.out}, [f"{ev}/compare/compare.md", f"{ev}/results.json"],
            datasets=[_with_split(s) for s in ("cifar10", "cifar100") + OOD_SETS],
            estimate=["score", 2 * eval_images] if ds == "cifar10" else ["wrn_oe_step", eval_images]))

    def density_eval(self, arch: str) -> None:
        fam, py, data, ev = DENSITY[arch], self.py, self.data, f"{self.out}/{eval_name('cifar10', arch)}"
        names = [run_name("cifar10", arch, m) for m in ("baseline", "oe_tune")]
        runs = [f"{self.out}/{n}" for n in names]
        cmds = [tool_cmd(py, "analysis.evaluate", ["--ckpt", f"{arch}={runs[0]}", f"{arch}_oe={runs[1]}",
                                                   "--detectors", "bpd", *fam.detectors, "--id-dataset", "cifar10",
                                                   "--data-root", data, "--out", ev, *self.dev,
                                                   *shlex.split(self.o.eval_args)]),
                tool_cmd(py, "analysis.svhn_likelihood", ["--results", f"{ev}/results.json", "--baseline", arch,
                                                          "--oe", f"{arch}_oe", "--ood", "svhn", "--out",
                                                          f"{ev}/likelihood"])]
        outputs = [f"{ev}/results.json", f"{ev}/likelihood"]
        if fam.bound_gap:
            cmds.append(tool_cmd(py, "analysis.bound_gap", ["--baseline", runs[0], "--oe", runs[1], "--id-dataset",
                                                            "cifar10", "--k-large", "256", "--limit", "2000",
                                                            "--data-root", data, "--out", f"{ev}/bound_gap",
                                                            *self.dev]))
            outputs.append(f"{ev}/bound_gap/bound_gap.md")
        self.nodes.append(Node(eval_name("cifar10", arch), "eval", f"{fam.title} evaluation{fam.eval_words} and "
                               "the CIFAR-10 vs SVHN bits/dim study", names, cmds, {}, outputs))


def build_graph(o: argparse.Namespace, py: str) -> list[Node]:
    """Every node of the paper's graph, in dependency order (the extra families of ``o``'s flags included)."""
    g = _Graph(o, py)
    g.classifiers()
    extra = [arch for arch in EXTRA_DENSITY if getattr(o, arch)]
    for arch in ("pixelcnn", *extra):
        g.density(arch)
    for ds in ("cifar10", "cifar100"):
        g.cifar_eval(ds)
    for arch in extra:
        g.density_eval(arch)
    return g.nodes


def find_node(o: argparse.Namespace, py: str, name: str) -> Node:
    """The node ``name`` of the graph with every family, or the score node of any run folder (``score_RUN``)."""
    for arch in EXTRA_DENSITY:
        setattr(o, arch, True)
    nodes = {n.name: n for n in build_graph(o, py)}
    if name in nodes:
        return nodes[name]
    if name.startswith(score_name("")) and len(name) > len(score_name("")):
        return _Graph(o, py).score(name[len(score_name("")):], "Density model", "", [])
    raise OEError(f"unknown node {name!r} (nodes: {', '.join(nodes)}, or score_RUN for any run folder)")


def _with_split(name: str) -> list[str]:
    """``[name, split]`` for a node's data check: ``test`` for the sets with a train split, else the default."""
    return [name, "test" if name in TEST_SPLIT_SETS else ""]


def order(nodes: list[Node]) -> list[Node]:
    """Dependency order (stable: the graph's own order where it allows)."""
    done: set[str] = set()
    out: list[Node] = []
    todo = list(nodes)
    names = {m.name for m in nodes}
    while todo:
        for n in todo:
            if all(d in done or d not in names for d in n.deps):
                out.append(n)
                done.add(n.name)
                todo.remove(n)
                break
        else:
            raise OEError("the run graph has a cycle: " + ", ".join(n.name for n in todo))
    return out


def select(nodes: list[Node], only: list[str], skip: list[str]) -> list[Node]:
    names = [n.name for n in nodes]
    for opt, given in (("--only", only), ("--skip", skip)):
        bad = [x for x in given if x not in names]
        if bad:
            raise OEError(f"unknown node {bad[0]!r} in {opt} (nodes: {', '.join(names)})")
    return [n for n in nodes if (not only or n.name in only) and n.name not in skip]
