"""``python -m oe_core.reproduce`` (``scripts/reproduce.sh``): the whole paper in one command.

The paper's run graph, each node one of the suite's existing scripts or CLIs with its flags (no training code
here):

* WRN-40-2 baseline -> OE fine-tune, and OE from scratch, for CIFAR-10 and CIFAR-100 (``classifiers_oe.train``,
  as ``scripts/cifar{10,100}_wrn_*.sh``);
* PixelCNN++ baseline (or the port's released weights, ``density_oe.port``) -> OE fine-tune -> per-image bits/dim
  (``density_oe.train``, ``scripts/density_cifar10_score.sh``); Glow, a VAE and the diffusion model the same way
  with ``--glow``, ``--vae`` and ``--diffusion`` (:data:`EXTRA_DENSITY`);
* the CIFAR-10 and CIFAR-100 evaluations (``scripts/eval_cifar.sh``: reference protocol, the comparison tables
  with the paper's numbers, the figures, Figure 2).

Modes: ``--plan`` (the graph in dependency order, each command, a device-time estimate from measured rates,
which runs are finished), ``--local`` (run in order here; finished runs are skipped, interrupted ones resume),
``--slurm`` (one ``sbatch`` job per node, chained with ``--dependency=afterok``; resources from a TOML file) and
``--status``.  Book-keeping lives in ``OUT/.reproduce/``: ``logs/NODE.log``, ``state/NODE.{done,failed}``,
``jobs/NODE.sbatch``, ``slurm_jobs.json`` / ``slurm_jobs.txt`` and ``graph.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from oe_core.atomic import atomic_write_text
from oe_core.errors import EXIT_PREEMPTED, OEError, cli_main
from oe_core.lock import FileLock, lock_holder

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
DEFAULT_RESOURCES = SCRIPTS / "reproduce_resources.toml"
BENCH_DIR = ROOT / "benchmarks" / "results"
STATE = ".reproduce"
# the paper's OOD sets (Table 5 order); scripts/density_cifar10_score.sh scores CIFAR-10 test and these
OOD_SETS = ("gaussian", "rademacher", "blobs", "textures", "svhn", "places365", "lsun")
SCORE_SETS = ("cifar10",) + OOD_SETS + ("cifar100",)
TEST_SPLIT_SETS = ("cifar10", "cifar100", "svhn")  # sets with a train split: their test split is read
# images per set at the paper's sizes (for the estimate only)
SET_IMAGES = {"cifar10": 10000, "cifar100": 10000, "svhn": 26032, "textures": 5640, "places365": 10000,
              "lsun": 10000, "gaussian": 10000, "rademacher": 10000, "blobs": 10000}
TRAIN_IMAGES = 50000
PRETTY = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
MODE_WORDS = {"baseline": "baseline", "oe_tune": "OE fine-tune", "oe_scratch": "OE from scratch"}
# density families beyond the paper's PixelCNN++, each added by its own flag (--glow, --diffusion): title, the
# options its baseline and OE scripts pass (scripts/density_cifar10_<name>_{baseline,oe_tune}.sh), and its
# benchmark cases (train step, scoring) for the --plan estimate (None: none; an OE step's images count twice, and
# the diffusion OE fine-tune's 4 t-draws per image are not counted)
EXTRA_DENSITY = {
    "glow": ("Glow", ["--batch-size", "512", "--lr", "1e-3", "--warmup-steps", "970", "--lr-decay", "1"], [],
             None, None),
    # the Likelihood Regret code's recipe, as scripts/density_cifar10_vae_baseline.sh
    "vae": ("VAE", ["--batch-size", "128", "--lr", "3e-4", "--lr-decay", "1", "--epochs", "200"], [], None, None),
    "diffusion": ("Diffusion", ["--batch-size", "128", "--lr", "2e-4", "--beta1", "0.9", "--beta2", "0.99",
                                "--warmup-steps", "100", "--lr-decay", "1", "--ema-decay", "0.9999"],
                  ["--diffusion-train-t-samples", "4"], "diffusion_train", "diffusion_score"),
}
# what a family's evaluation node adds to bits/dim and the CIFAR-10 vs SVHN study: (detectors, title words)
# per family: extra detectors, words for the node's title, and whether it runs the bound gap (ELBO against
# IWAE-256 before and after OE: it needs an encoder)
EVAL_EXTRAS = {"vae": (["likelihood_regret"], " (bits/dim and Likelihood Regret), the bound gap (ELBO vs IWAE-256)",
                       True)}
RESOURCE_KEYS = {"partition": str, "account": str, "qos": str, "time": str, "nodes": int, "gpus_per_node": int,
                 "nproc_per_task": int, "tasks_per_node": int, "cpus_per_task": int, "mem": str,
                 "rdzv_port": int, "extra": list}


# ---------------------------------------------------------------------------------------------- the graph


@dataclass
class Node:
    name: str
    kind: str                       # resource kind (the sections of reproduce_resources.toml)
    title: str
    deps: list[str]
    cmds: list[list[str]]           # commands run one after the other (argv lists)
    env: dict[str, str]             # environment of the commands (DATA_ROOT, OUT, ...)
    outputs: list[str]              # paths that exist once the node is finished
    run_folder: str = ""            # training nodes: the run folder (finished when its epochs are done)
    module: str = ""                # training nodes: the module torchrun starts (cmds[0] is PY -m module ARGS)
    datasets: list[list[str]] = field(default_factory=list)  # [name, split] pairs the node reads
    estimate: list = field(default_factory=list)              # [benchmark case, images] or []

    def display(self, py: str) -> list[str]:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        out = []
        for c in self.cmds:
            argv = ["python" if a == py else a for a in c]
            argv = [os.path.relpath(a, ROOT) if a.startswith(str(SCRIPTS)) else a for a in argv]
            out.append((env + " " if env else "") + shlex.join(argv))
        return out


def _epochs(args: list[str], default: int) -> int:
    for i, a in enumerate(args):
        if a == "--epochs" and i + 1 < len(args):
            with contextlib.suppress(ValueError):
                return int(args[i + 1])
        if a.startswith("--epochs="):
            with contextlib.suppress(ValueError):
                return int(a.split("=", 1)[1])
    return default


def build_graph(o: argparse.Namespace, py: str) -> list[Node]:
    """Every node of the paper's graph, in dependency order."""
    out, data = str(o.out), str(o.data_root)
    dev = ["--device", o.device] if o.device else []
    amp = ["--amp", o.amp] if o.amp else []
    outl = ["--outliers", o.outliers] if o.outliers else []
    outlier_set = o.outliers or "tinyimages80m"
    wrn_x, pcnn_x = shlex.split(o.wrn_args), shlex.split(o.pixelcnn_args)
    score_x, eval_x = shlex.split(o.score_args), shlex.split(o.eval_args)
    nodes: list[Node] = []

    def train(name, kind, title, module, args, deps, datasets, case, images):
        run = f"{out}/{name}"
        nodes.append(Node(name, kind, title, deps, [[py, "-m", module, *args, "--out", run]], {},
                          [run], run_folder=run, module=module, datasets=datasets,
                          estimate=[case, images] if case else []))

    for ds in ("cifar10", "cifar100"):
        for mode, epochs, mult in (("baseline", 100, 1), ("oe_tune", 10, 3), ("oe_scratch", 100, 3)):
            name = f"{ds}_wrn_{mode}"
            args = ["--mode", mode, "--dataset", ds, "--data-root", data]
            deps = []
            if mode == "oe_tune":
                args += ["--init", f"{out}/{ds}_wrn_baseline"]
                deps = [f"{ds}_wrn_baseline"]
            extra = (outl if mode != "baseline" else []) + dev + amp + wrn_x
            sets = [[ds, "train"], [ds, "test"]] + ([[outlier_set, "train"]] if mode != "baseline" else [])
            train(name, f"wrn_{mode}", f"WRN-40-2 {MODE_WORDS[mode]} on {PRETTY[ds]}", "classifiers_oe.train",
                  args + extra, deps, sets, "wrn_oe_step", _epochs(wrn_x, epochs) * TRAIN_IMAGES * mult)

    density = [("pixelcnn", "PixelCNN++", pcnn_x, [], [], "train_paper", "score")]
    density += [(arch, title, shlex.split(getattr(o, f"{arch}_args")), base_args, oe_args, case, score_case)
                for arch, (title, base_args, oe_args, case, score_case) in EXTRA_DENSITY.items() if getattr(o, arch)]
    sets = list(o.score_sets or SCORE_SETS)
    for arch, title, xargs, base_args, oe_args, case, score_case in density:
        base = f"cifar10_{arch}_baseline"
        cifar = [["cifar10", "train"], ["cifar10", "test"]]
        if arch == "pixelcnn" and o.pixelcnn_weights:
            nodes.append(Node(base, "pixelcnn_port", "PixelCNN++: import the port's released weights", [],
                              [[py, "-m", "density_oe.port", "--src", str(o.pixelcnn_weights), "--out",
                                f"{out}/{base}"]], {}, [f"{out}/{base}/checkpoint.pt"]))
        else:
            train(base, f"{arch}_baseline", f"{title} baseline on CIFAR-10", "density_oe.train",
                  ["--arch", arch, "--mode", "baseline", "--dataset", "cifar10", "--data-root", data,
                   *base_args, *dev, *amp, *xargs], [], cifar, case, _epochs(xargs, 300) * TRAIN_IMAGES)
        tune = f"cifar10_{arch}_oe_tune"
        train(tune, f"{arch}_oe_tune", f"{title} OE fine-tune", "density_oe.train",
              ["--arch", arch, "--mode", "oe_tune", "--dataset", "cifar10", "--data-root", data, "--init",
               f"{out}/{base}", *oe_args, *outl, *dev, *amp, *xargs], [base], cifar + [[outlier_set, "train"]], case,
              _epochs(xargs, 2) * TRAIN_IMAGES * 2)
        for run in (base, tune):
            score = [_with_split(s) for s in sets]
            nodes.append(Node(f"score_{run}", "score", f"{title} per-image bits/dim ({run})", [run],
                              [["bash", str(SCRIPTS / "density_cifar10_score.sh"), run, *dev, *score_x]],
                              {"DATA_ROOT": data, "OUT": out, "SETS": " ".join(sets)},
                              [f"{out}/scores/{run}/{s}.npy" for s in sets], datasets=score,
                              estimate=[score_case, sum(SET_IMAGES.get(s, 10000) for s in sets)]
                              if score_case else []))

    eval_images = sum(SET_IMAGES.values())
    for ds in ("cifar10", "cifar100"):
        deps = [f"{ds}_wrn_{m}" for m in ("baseline", "oe_tune", "oe_scratch")]
        if ds == "cifar10":
            deps += ["cifar10_pixelcnn_baseline", "cifar10_pixelcnn_oe_tune"]
        ev = f"{out}/{ds}_eval"
        sets = [_with_split(s) for s in ("cifar10", "cifar100") + OOD_SETS]
        nodes.append(Node(f"{ds}_eval", "eval", f"{PRETTY[ds]} evaluation, tables with the paper's numbers, "
                          + ("figures, Figure 2" if ds == "cifar10" else "figures"), deps,
                          [["bash", str(SCRIPTS / "eval_cifar.sh"), ds, *dev, *eval_x]],
                          {"DATA_ROOT": data, "OUT": out}, [f"{ev}/compare/compare.md", f"{ev}/results.json"],
                          datasets=sets, estimate=["score", 2 * eval_images] if ds == "cifar10"
                          else ["wrn_oe_step", eval_images]))
    for arch, title, *_ in density[1:]:
        ev = f"{out}/cifar10_{arch}_eval"
        runs = [f"{out}/cifar10_{arch}_baseline", f"{out}/cifar10_{arch}_oe_tune"]
        detectors, words, bound_gap = EVAL_EXTRAS.get(arch, ([], "", False))
        cmds = [[py, "-m", "analysis.evaluate", "--ckpt", f"{arch}={runs[0]}", f"{arch}_oe={runs[1]}",
                 "--detectors", "bpd", *detectors, "--id-dataset", "cifar10", "--data-root", data, "--out", ev, *dev,
                 *eval_x],
                [py, "-m", "analysis.svhn_likelihood", "--results", f"{ev}/results.json", "--baseline", arch, "--oe",
                 f"{arch}_oe", "--ood", "svhn", "--out", f"{ev}/likelihood"]]
        outputs = [f"{ev}/results.json", f"{ev}/likelihood"]
        if bound_gap:
            cmds.append([py, "-m", "analysis.bound_gap", "--baseline", runs[0], "--oe", runs[1], "--id-dataset",
                         "cifar10", "--k-large", "256", "--limit", "2000", "--data-root", data, "--out",
                         f"{ev}/bound_gap", *dev])
            outputs.append(f"{ev}/bound_gap/bound_gap.md")
        nodes.append(Node(f"cifar10_{arch}_eval", "eval", f"{title} evaluation{words} and the CIFAR-10 vs SVHN "
                          "bits/dim study", [f"cifar10_{arch}_baseline", f"cifar10_{arch}_oe_tune"], cmds,
                          {}, outputs))
    return nodes


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


# ---------------------------------------------------------------------------------------------- state


def state_dir(out: Path) -> Path:
    return out / STATE


def log_path(out: Path, node: str) -> Path:
    return state_dir(out) / "logs" / f"{node}.log"


def _run_complete(run: Path) -> bool:
    """A training run folder whose configured epochs are all done."""
    try:
        cfg = json.loads((run / "config.json").read_text())
        rows = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(cfg.get("epochs")) and len(rows) >= int(cfg["epochs"]) and (run / "checkpoint.pt").exists()


def finished(out: Path, node: Node) -> bool:
    if not all(Path(p).exists() for p in node.outputs):
        return False
    if node.run_folder and _run_complete(Path(node.run_folder)):
        return True
    return (state_dir(out) / "state" / f"{node.name}.done").exists()


def checkpoint_note(node: Node) -> str:
    if node.run_folder and (Path(node.run_folder) / "checkpoint.pt").exists():
        return "; a checkpoint is there: it resumes"
    return ""


def mark(out: Path, node: str, what: str, text: str) -> None:
    d = state_dir(out) / "state"
    d.mkdir(parents=True, exist_ok=True)
    for other in ("done", "failed"):
        if other != what:
            (d / f"{node}.{other}").unlink(missing_ok=True)
    atomic_write_text(d / f"{node}.{what}", text + "\n")


def failed_note(out: Path, node: str) -> Optional[str]:
    p = state_dir(out) / "state" / f"{node}.failed"
    return p.read_text().strip() if p.exists() else None


class OutLock(FileLock):
    """An exclusive lock on ``OUT/.reproduce/lock``: one reproduce run (local or submitting) per ``--out``."""

    def __init__(self, out: Path, what: str):
        super().__init__(state_dir(out) / "lock", f"pid {{pid}}, {what}", lambda holder: OEError(
            f"--out {str(out)!r} is held by another reproduce run ({holder}); wait for it, stop it, or use another "
            "--out"))


# ---------------------------------------------------------------------------------------------- SLURM queries


def slurm_jobs(out: Path) -> dict:
    p = state_dir(out) / "slurm_jobs.json"
    return json.loads(p.read_text()) if p.exists() else {}


def slurm_states(ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (STATE, reason) from squeue, then sacct, then scontrol (whichever is there and knows)."""
    states: dict[str, tuple[str, str]] = {}
    if not ids:
        return states
    if shutil.which("squeue"):
        r = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"], capture_output=True,
                           text=True, timeout=60)
        for line in r.stdout.splitlines():
            jid, st, reason = (line.split("|") + ["", ""])[:3]
            if jid in ids:
                states[jid] = (st, "" if reason in ("None", "(null)") else reason)
    rest = [i for i in ids if i not in states]
    if rest and shutil.which("sacct"):
        r = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(rest), "-o", "JobID,State,ExitCode"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 2 and parts[0] in rest:
                    states[parts[0]] = (parts[1].split()[0], f"exit {parts[2]}" if len(parts) > 2 else "")
    rest = [i for i in ids if i not in states]
    if rest and shutil.which("scontrol"):
        for jid in rest:
            r = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True, timeout=60)
            fields = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
            if "JobState" in fields:
                reason = fields.get("Reason", "None")
                states[jid] = (fields["JobState"], "" if reason == "None" else reason)
    return states


ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}


def active_slurm_jobs(out: Path) -> list[str]:
    jobs = slurm_jobs(out)
    if not jobs or not shutil.which("squeue"):
        return []
    states = slurm_states([j["job"] for j in jobs.values()])
    return [f"{name} (job {j['job']}, {states[j['job']][0].lower()})" for name, j in jobs.items()
            if j["job"] in states and states[j["job"]][0] in ACTIVE]


def check_not_busy(out: Path) -> None:
    busy = active_slurm_jobs(out)
    if busy:
        raise OEError(f"--out {str(out)!r} is held by another run: SLURM jobs still queued or running: "
                      f"{', '.join(busy[:4])}{' ...' if len(busy) > 4 else ''}; wait, scancel them, or use "
                      "another --out")


# ---------------------------------------------------------------------------------------------- checks


def check_data(nodes: list[Node], data_root: Path) -> None:
    """One line naming the first missing dataset a selected node needs."""
    from oe_core.data import dataset_info, get_dataset

    if not data_root.is_dir():
        raise OEError(f"--data-root {str(data_root)!r} is not a folder (the datasets go there; "
                      "python -m oe_core.data lists them)")
    seen: dict[tuple, Optional[str]] = {}
    for n in nodes:
        for name, split in n.datasets:
            try:
                entry = dataset_info(name)
            except Exception as e:  # an unknown name from --score-sets / --outliers
                raise OEError(f"node {n.name}: {e}") from None
            split = split or entry.default_split
            key = (name, split)
            if key not in seen:
                seen[key] = None
                if entry.needs_root:
                    try:
                        get_dataset(name, split=split, root=data_root)
                    except OEError as e:
                        seen[key] = str(e)
                    except Exception as e:  # a damaged file the builder did not turn into an OEError
                        seen[key] = f"{type(e).__name__}: {e}"
            if seen[key]:
                raise OEError(f"missing data set for node {n.name}: {name} ({split}): {seen[key]}")


def check_deps_selected(graph: list[Node], sel: list[Node], out: Path) -> None:
    names = {n.name for n in sel}
    by = {n.name: n for n in graph}
    for n in sel:
        for d in n.deps:
            if d not in names and not finished(out, by[d]):
                raise OEError(f"node {n.name} needs {d}, which is neither finished in {str(out)!r} nor selected "
                              "(add it to --only, or take it off --skip)")


# ---------------------------------------------------------------------------------------------- estimate


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


# ---------------------------------------------------------------------------------------------- status


def node_status(out: Path, node: Node, jobs: dict, states: dict, local: Optional[str]) -> str:
    log = log_path(out, node.name)
    if finished(out, node):
        return "finished"
    job = jobs.get(node.name)
    if job:
        st, reason = states.get(job["job"], ("", ""))
        if st in ("RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"):
            return f"running (SLURM job {job['job']}; log {log})"
        if st in ACTIVE:
            return f"pending (SLURM job {job['job']}{', ' + reason if reason else ''})"
        note = failed_note(out, node.name)
        if note:
            return f"failed ({note})"
        if st:
            return f"failed (SLURM job {job['job']} {st.lower()}{', ' + reason if reason else ''}; log {log})"
        return f"failed (SLURM job {job['job']} ended without finishing; log {log})"
    if local and f"running {node.name}" in local:
        return f"running (local, {local.split(',')[0]}; log {log})"
    note = failed_note(out, node.name)
    if note:
        return f"failed ({note})"
    return "not started" + checkpoint_note(node)


NODE_STATES = ("finished", "running", "pending", "failed", "not started")


def state_of(status: str) -> str:
    """The state a :func:`node_status` line starts with ("not started; a checkpoint ..." -> "not started")."""
    return next(s for s in NODE_STATES if status.startswith(s))


# ---------------------------------------------------------------------------------------------- local


def _stream(proc: subprocess.Popen, log) -> None:
    assert proc.stdout is not None
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        log.write(chunk)
        log.flush()
        with contextlib.suppress(OSError):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()


def local_cmds(node: Node, gpus: int) -> list[list[str]]:
    if node.module and gpus > 1:
        py, _, module, *args = node.cmds[0]
        return [[py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus), "-m", module,
                 *args]]
    return node.cmds


def run_local(o, sel: list[Node], out: Path) -> int:
    with OutLock(out, "--local") as lock:
        check_not_busy(out)
        interrupted = {"sig": None}
        child: dict = {"proc": None}

        def on_signal(signum, frame):
            interrupted["sig"] = signum
            p = child["proc"]
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for i, node in enumerate(sel, 1):
                if finished(out, node):
                    print(f"[{i}/{len(sel)}] {node.name}: finished, skipped", file=sys.stderr)
                    continue
                log = log_path(out, node.name)
                log.parent.mkdir(parents=True, exist_ok=True)
                print(f"[{i}/{len(sel)}] {node.name}: {node.title}{checkpoint_note(node)} (log {log})",
                      file=sys.stderr, flush=True)
                lock.note(f", running {node.name}")
                (state_dir(out) / "state" / f"{node.name}.failed").unlink(missing_ok=True)
                rc = 0
                with open(log, "ab") as f:
                    f.write(f"== {node.name}: local run, pid {os.getpid()}, {time.ctime()}\n".encode())
                    for cmd in local_cmds(node, o.gpus):
                        f.write(("$ " + shlex.join(cmd) + "\n").encode())
                        f.flush()
                        proc = subprocess.Popen(cmd, env={**os.environ, **node.env}, cwd=ROOT,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                start_new_session=True)
                        child["proc"] = proc
                        _stream(proc, f)
                        rc = proc.wait()
                        child["proc"] = None
                        if rc != 0 or interrupted["sig"]:
                            break
                if interrupted["sig"] or rc == EXIT_PREEMPTED:
                    print(f"interrupted in {node.name} (exit {rc}); run the same command again to continue "
                          "(finished runs are skipped, this one resumes from its checkpoint)", file=sys.stderr)
                    return EXIT_PREEMPTED
                if rc != 0:
                    mark(out, node.name, "failed", f"exit {rc}; log {log}")
                    print(f"error: {node.name} failed with exit code {rc}; log {log}", file=sys.stderr)
                    return 1
                mark(out, node.name, "done", f"local, {time.ctime()}")
                lock.note("")
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    print(f"all {len(sel)} nodes finished; tables: {out}/cifar10_eval/compare/compare.md, "
          f"{out}/cifar100_eval/compare/compare.md", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- SLURM


def load_resources(path: Optional[str]) -> dict[str, dict]:
    import tomllib

    def read(p: Path) -> dict:
        try:
            return tomllib.loads(p.read_text())
        except OSError as e:
            raise OEError(f"cannot read the resources file {str(p)!r} ({e.strerror or e})") from None
        except tomllib.TOMLDecodeError as e:
            raise OEError(f"resources file {str(p)!r}: {e}") from None

    base = read(DEFAULT_RESOURCES)
    user = read(Path(path)) if path else {}
    kinds = sorted(set(base) | {"default"})
    for sec, vals in user.items():
        if not isinstance(vals, dict):
            raise OEError(f"resources file {path!r}: {sec!r} is not a [section] (sections: {', '.join(kinds)})")
        if sec not in base:
            raise OEError(f"resources file {path!r}: unknown section [{sec}] (sections: {', '.join(kinds)})")
        for k, v in vals.items():
            if k not in RESOURCE_KEYS:
                raise OEError(f"resources file {path!r}: unknown key {k!r} in [{sec}] "
                              f"(keys: {', '.join(RESOURCE_KEYS)})")
            if not isinstance(v, RESOURCE_KEYS[k]):
                raise OEError(f"resources file {path!r}: [{sec}] {k} must be a {RESOURCE_KEYS[k].__name__}")
    merged = {}
    for sec in base:
        # built-in default < built-in kind < your [default] < your kind
        r = {**base["default"], **base[sec], **user.get("default", {}), **user.get(sec, {})}
        merged[sec] = r
    return merged


def sbatch_options(res: dict) -> list[str]:
    opts = [f"--nodes={res['nodes']}", f"--ntasks-per-node={res['tasks_per_node']}",
            f"--cpus-per-task={res['cpus_per_task']}", f"--time={res['time']}"]
    if res["gpus_per_node"] > 0:
        opts.append(f"--gpus-per-node={res['gpus_per_node']}")
    for key in ("partition", "account", "qos", "mem"):
        if res[key]:
            opts.append(f"--{key}={res[key]}")
    return opts + list(res["extra"])


def job_script(node: Node, res: dict, out: Path, py: str) -> str:
    nproc = res.get("nproc_per_task") or max(res["gpus_per_node"], 1)
    ranks = res["nodes"] * res["tasks_per_node"] * nproc
    log = log_path(out, node.name)
    if node.module and ranks > 1:
        _, _, module, *args = node.cmds[0]
        cmds = [["srun", "--kill-on-bad-exit=1", py, "-m", "torch.distributed.run", "--nnodes", "$SLURM_NTASKS",
                 "--nproc_per_node", str(nproc), "--rdzv_id", "$SLURM_JOB_ID", "--rdzv_backend", "c10d",
                 "--rdzv_endpoint", f"$HEAD_NODE:{res['rdzv_port']}", "-m", module, *args]]
    else:
        cmds = node.cmds

    def q(a: str) -> str:
        return a if a.startswith("$") else shlex.quote(a)

    body = " && ".join(" ".join(q(a) for a in c) for c in cmds)
    if len(cmds) > 1:
        body = f"( {body} )"
    state = state_dir(out) / "state"
    lines = ["#!/bin/bash",
             f"# {node.name}: {node.title} (written by python -m oe_core.reproduce --slurm)",
             f"#SBATCH --job-name=oe-{node.name}",
             f"#SBATCH --output={log}",
             "#SBATCH --open-mode=append",
             "#SBATCH --signal=B:TERM@120",
             "#SBATCH --requeue",
             *(f"#SBATCH {opt}" for opt in sbatch_options(res)),
             "set -uo pipefail",
             f"cd {shlex.quote(str(ROOT))}",
             f"export OE_PYTHON={shlex.quote(py)}",
             f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
             *(f"export {k}={shlex.quote(v)}" for k, v in node.env.items()),
             f"STATE={shlex.quote(str(state))}",
             f"NODE={node.name}",
             'mkdir -p "$STATE"; rm -f "$STATE/$NODE.failed"',
             'HEAD_NODE="$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n 1)"',
             'HEAD_NODE="${HEAD_NODE:-localhost}"',
             'echo "== $NODE: SLURM job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname), $(date), '
             'start $(date +%s.%N)"',
             "TERMED=0",
             "child=",
             "# the batch shell gets SIGTERM (--signal=B:TERM@120, or a preemption): pass it to the run, which",
             "# checkpoints and exits 75; the job then requeues itself and the requeued job resumes",
             'trap \'TERMED=1; echo "== SIGTERM: passing it on to the run"; '
             '[[ -n "$child" ]] && kill -TERM -- "-$child" 2>/dev/null\' TERM',
             "set -m  # the run gets its own process group, so the signal reaches every process of it",
             f"{body} &",
             "child=$!",
             'while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done',
             "set +m",
             'if [[ $rc -eq 0 ]]; then',
             '  echo "job $SLURM_JOB_ID, $(date)" > "$STATE/$NODE.done"',
             '  echo "== $NODE: finished at $(date +%s.%N)"; exit 0',
             "fi",
             f'if [[ $rc -eq {EXIT_PREEMPTED} || $TERMED -eq 1 ]]; then',
             '  echo "== $NODE: interrupted (exit $rc); requeueing job $SLURM_JOB_ID to resume from the checkpoint"',
             '  if scontrol requeue "$SLURM_JOB_ID"; then exit 0; fi',
             '  echo "exit $rc (interrupted, requeue refused; run reproduce --slurm again to resubmit); '
             f'log {log}" > "$STATE/$NODE.failed"',
             f"  exit {EXIT_PREEMPTED}",
             "fi",
             f'echo "exit $rc in SLURM job $SLURM_JOB_ID; log {log}" > "$STATE/$NODE.failed"',
             'echo "== $NODE: failed with exit code $rc"',
             'exit "$rc"',
             ""]
    return "\n".join(lines)


def submit_slurm(res: dict, sel: list[Node], out: Path, py: str) -> int:
    """Submit the unfinished nodes of ``sel`` as sbatch jobs chained by ``afterok`` (``res``: the resources file,
    loaded and the presence of sbatch checked by :func:`main`)."""
    with OutLock(out, "--slurm (submitting)"):
        check_not_busy(out)
        todo = [n for n in sel if not finished(out, n)]
        jobs_dir = state_dir(out) / "jobs"
        jobs_dir.mkdir(parents=True, exist_ok=True)
        log_path(out, "x").parent.mkdir(parents=True, exist_ok=True)
        scripts = {}
        for n in todo:
            p = jobs_dir / f"{n.name}.sbatch"
            p.write_text(job_script(n, res[n.kind], out, py))
            scripts[n.name] = p
        submitted: dict[str, dict] = {}
        for n in todo:
            deps = [submitted[d]["job"] for d in n.deps if d in submitted]
            cmd = ["sbatch", "--parsable"]
            if deps:
                cmd.append("--dependency=afterok:" + ":".join(deps))
            cmd.append(str(scripts[n.name]))
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
            if r.returncode != 0:
                for j in submitted.values():
                    subprocess.run(["scancel", j["job"]], capture_output=True, timeout=60)
                msg = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
                raise OEError(f"sbatch refused {n.name}: {msg}"
                              + (f" (the {len(submitted)} jobs submitted before it were cancelled)"
                                 if submitted else ""))
            jid = r.stdout.strip().split(";")[0]
            submitted[n.name] = {"job": jid, "after": deps, "script": str(scripts[n.name]),
                                 "log": str(log_path(out, n.name)), "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (state_dir(out) / "state" / f"{n.name}.failed").unlink(missing_ok=True)
        jobs = {**{k: v for k, v in slurm_jobs(out).items() if k not in submitted}, **submitted}
        atomic_write_text(state_dir(out) / "slurm_jobs.json", json.dumps(jobs, indent=1) + "\n")
        atomic_write_text(state_dir(out) / "slurm_jobs.txt", "".join(f"{k} {v['job']}\n" for k, v in jobs.items()))
    for n in sel:
        if n.name in submitted:
            j = submitted[n.name]
            after = f"  after {','.join(j['after'])}" if j["after"] else ""
            print(f"{n.name:34s} job {j['job']}{after}")
        else:
            print(f"{n.name:34s} finished, not submitted")
    print(f"{len(submitted)} jobs submitted; ids in {state_dir(out) / 'slurm_jobs.txt'}; "
          f"logs in {state_dir(out) / 'logs'}; python -m oe_core.reproduce --status --out {out}",
          file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- CLI


HELP = """The whole paper in one command, on one machine (--local) or as a SLURM job graph (--slurm).

The run graph (--plan shows it with every command): for CIFAR-10 and CIFAR-100, WRN-40-2 baseline -> OE
fine-tune, and OE from scratch; PixelCNN++ baseline (or --pixelcnn-weights) -> OE fine-tune, each scored
(per-image bits/dim); Glow, a VAE and the diffusion model the same way with --glow, --vae and --diffusion; then the
CIFAR-10 evaluation (MSP and bits/pixel: Table 1/7
and Table 5 beside the paper's numbers, the figures, Figure 2) and the CIFAR-100 evaluation.  Each node is one
of the suite's scripts or CLIs with its flags; training nodes resume from their checkpoints when rerun.
"""

EPILOG = """examples:
  scripts/reproduce.sh --plan --data-root /data --out runs --device cuda --amp bf16
  scripts/reproduce.sh --local --data-root /data --out runs --device cuda --amp bf16 --gpus 4
  scripts/reproduce.sh --slurm --data-root /data --out runs --device cuda --amp bf16 --resources my.toml
  scripts/reproduce.sh --status --out runs

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
    g = p.add_argument_group("where")
    g.add_argument("--data-root", default=os.environ.get("DATA_ROOT", ""),
                   help="folder holding the datasets (default: $DATA_ROOT); checked before anything runs")
    g.add_argument("--out", default=os.environ.get("OUT", "runs"),
                   help="parent folder of every run, score and evaluation (default: $OUT or runs)")
    s = p.add_argument_group("which nodes")
    s.add_argument("--only", nargs="+", default=[], metavar="NODE",
                   help="only these nodes (their predecessors must be finished or selected too)")
    s.add_argument("--skip", nargs="+", default=[], metavar="NODE", help="leave these nodes out")
    for arch, (title, *_) in EXTRA_DENSITY.items():
        s.add_argument(f"--{arch}", action="store_true", help=f"add {title}: baseline -> OE fine-tune -> scores, "
                       "and its evaluation with the CIFAR-10 vs SVHN bits/dim study (beyond the paper)")
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
                       *((arch, f"both {title} runs (density_oe.train)")
                         for arch, (title, *_) in EXTRA_DENSITY.items()),
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


def saved_graph(out: Path) -> Optional[list[Node]]:
    p = state_dir(out) / "graph.json"
    if not p.exists():
        return None
    with contextlib.suppress(ValueError, TypeError, KeyError):
        return [Node(**d) for d in json.loads(p.read_text())["nodes"]]
    return None


def save_graph(out: Path, nodes: list[Node]) -> None:
    d = state_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "graph.json", json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=1) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    o = parser().parse_args(argv)
    out = Path(o.out).expanduser().resolve()
    o.out = out
    py = python_exe()
    if o.status:
        graph = saved_graph(out)
        if graph is None:
            o.data_root = Path(o.data_root or ".").expanduser().resolve()
            graph = build_graph(o, py)
        sel = select(graph, o.only, o.skip)
        jobs = slurm_jobs(out)
        states = slurm_states([j["job"] for j in jobs.values()]) if jobs else {}
        local = lock_holder(state_dir(out) / "lock")
        counts: dict[str, int] = {}
        for n in order(sel):
            st = node_status(out, n, jobs, states, local)
            counts[state_of(st)] = counts.get(state_of(st), 0) + 1
            print(f"{n.name:34s} {st}")
        print(", ".join(f"{v} {k}" for k, v in counts.items()), file=sys.stderr)
        return 0
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
    holder = lock_holder(state_dir(out) / "lock")
    if holder:
        raise OEError(f"--out {str(out)!r} is held by another reproduce run ({holder}); wait for it, stop it, "
                      "or use another --out")
    check_not_busy(out)
    check_data([n for n in sel if not finished(out, n)], o.data_root)
    out.mkdir(parents=True, exist_ok=True)
    save_graph(out, graph)
    if o.local:
        return run_local(o, sel, out)
    return submit_slurm(res, sel, out, py)


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


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
