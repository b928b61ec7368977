"""Each experiment script in ``scripts/`` runs its node of the paper's run graph, and a node run on its own runs
the command the graph plans: a script and the graph cannot drift (the recipe has one home, study/paper/recipe.py
over the trainers' config defaults).

Two steps, both fast: a fake ``OE_PYTHON`` records what each script starts (``-m study.reproduce --run-node NODE
...``, with the environment it passes on), and ``--run-node`` runs in-process with ``exec`` recorded.  The scripts'
real runs (tiny models) are in ``test_classifiers_scripts.py``, ``test_density_scripts.py`` and
``test_paper_pipeline.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oe_core.errors import cli_main
from study import paper as R
from study.paper import local

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
EXTRA = ["--device", "cpu", "--epochs", "3"]   # options a user appends
# script -> (its positional arguments, extra environment, the node it runs)
EXPERIMENTS = {f"{ds}_wrn_{m}.sh": ([], {}, f"{ds}_wrn_{m}") for ds in ("cifar10", "cifar100")
               for m in ("baseline", "oe_tune", "oe_scratch")}
EXPERIMENTS.update({f"density_cifar10_{p}{m}.sh": ([], {}, f"cifar10_{arch}_{m}")
                    for arch, p in (("pixelcnn", ""), ("glow", "glow_"), ("vae", "vae_"), ("diffusion", "diffusion_"))
                    for m in ("baseline", "oe_tune")})
EXPERIMENTS.update({
    "density_cifar10_score.sh": (["cifar10_pixelcnn_oe_tune"], {}, "score_cifar10_pixelcnn_oe_tune"),
    "density_cifar10_glow_score.sh": ([""], {}, "score_cifar10_glow_baseline"),       # "": the default run
    "density_cifar10_vae_score.sh": (["cifar10_vae_oe_tune"], {}, "score_cifar10_vae_oe_tune"),
    "density_cifar10_diffusion_score.sh": (["cifar10_diffusion_oe_tune"], {}, "score_cifar10_diffusion_oe_tune"),
    "eval_cifar10.sh": ([], {}, "cifar10_eval"),
    "eval_cifar100.sh": ([], {}, "cifar100_eval"),
    "eval_cifar.sh": (["cifar100"], {}, "cifar100_eval"),
    "cifar_wrn_run.sh": (["cifar100", "oe_scratch"], {}, "cifar100_wrn_oe_scratch"),
    "density_run.sh": (["oe_tune"], {"ARCH": "vae"}, "cifar10_vae_oe_tune"),
})
RECORDER = ('#!/bin/bash\nprintf "%s\\n" "$@" > "$RECORD"\n'
            'printf "%s\\n" "$PWD" "$DATA_ROOT" "$OUT" "${SETS:-}" "${NPROC:-}" > "$RECORD.env"\n')


def record_script(tmp_path: Path, script: str, args: list[str], env: dict) -> tuple[list[str], list[str]]:
    """What ``script`` starts, through a fake python: (its argv, [cwd, DATA_ROOT, OUT, SETS, NPROC])."""
    fake = tmp_path / "fakepy"
    if not fake.exists():
        fake.write_text(RECORDER)
        fake.chmod(0o755)
    rec = tmp_path / f"{script}.args"
    subprocess.run(["bash", str(SCRIPTS / script), *args], check=True, timeout=60, cwd=tmp_path,
                   env={**os.environ, "OE_PYTHON": str(fake), "RECORD": str(rec), "DATA_ROOT": "data", "OUT": "runs",
                        **env})
    return rec.read_text().splitlines(), (tmp_path / f"{script}.args.env").read_text().splitlines()


@pytest.fixture
def execs(monkeypatch):
    """``--run-node`` with its commands recorded instead of run (``exec`` and the subprocesses before it)."""
    calls: list[list[str]] = []

    def fake_exec(path, argv, env):
        calls.append(list(argv))
        raise SystemExit(0)

    monkeypatch.setattr(local.os, "execvpe", fake_exec)
    monkeypatch.setattr(local.subprocess, "run", lambda cmd, env: calls.append(list(cmd)) or
                        subprocess.CompletedProcess(cmd, 0))
    return calls


def run_node(monkeypatch, capsys, execs, name: str, extra: list[str], **env) -> tuple[int, list[list[str]], str]:
    for k in ("NPROC", "SETS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    execs.clear()
    try:
        rc = cli_main(R.main, ["--run-node", name, *extra])
    except SystemExit as e:
        rc = e.code
    return rc, list(execs), capsys.readouterr().err


def planned(tmp_path: Path, py: str = sys.executable) -> dict:
    o = R.parser().parse_args(["--plan", "--glow", "--vae", "--diffusion"])
    o.out, o.data_root = tmp_path / "runs", tmp_path / "data"
    return {n.name: n for n in R.build_graph(o, py)}


def test_every_experiment_script_runs_its_graph_node(tmp_path):
    scripts = {p.name for p in SCRIPTS.glob("*.sh")
               if p.name.startswith(("cifar", "density_", "eval_cifar"))}
    assert scripts == set(EXPERIMENTS), "an experiment script without its node here: " + str(scripts ^ set(EXPERIMENTS))
    graph = planned(tmp_path)
    for script, (args, env, node) in EXPERIMENTS.items():
        argv, seen = record_script(tmp_path, script, [*args, *EXTRA], env)
        assert argv == ["-m", "study.reproduce", "--run-node", node, *EXTRA], script
        assert node in graph, node
        # the script's environment reaches the node: relative DATA_ROOT and OUT made absolute where it started
        assert seen[1:3] == [str(tmp_path / "data"), str(tmp_path / "runs")], script


def test_run_node_runs_exactly_the_planned_command_with_the_options_appended(tmp_path, monkeypatch, capsys, execs):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OE_PYTHON", sys.executable)
    graph = planned(tmp_path)
    for name, node in graph.items():
        rc, cmds, err = run_node(monkeypatch, capsys, execs, name, EXTRA, DATA_ROOT="data", OUT="runs")
        assert rc == 0, err
        if name.startswith("score_"):       # each density_oe.score call takes the options
            assert cmds == [c + EXTRA for c in node.cmds] and len(cmds) == 9, name
        else:                               # the tool of the node's first command takes them
            assert cmds == [node.cmds[0] + EXTRA] + node.cmds[1:], name
    # a training node's command: the trainer's CLI with its run folder under OUT, the baseline to start from
    tune = graph["cifar10_wrn_oe_tune"].cmds[0]
    assert tune[:3] == [sys.executable, "-m", "classifiers_oe.train"]
    assert tune[tune.index("--out") + 1] == str(tmp_path / "runs" / "cifar10_wrn_oe_tune")
    assert tune[tune.index("--init") + 1] == str(tmp_path / "runs" / "cifar10_wrn_baseline")


def test_run_node_takes_nproc_sets_and_any_run_folder_to_score(tmp_path, monkeypatch, capsys, execs):
    monkeypatch.setenv("OE_PYTHON", "py")
    env = {"DATA_ROOT": str(tmp_path / "d"), "OUT": str(tmp_path / "o")}
    rc, cmds, _ = run_node(monkeypatch, capsys, execs, "cifar10_pixelcnn_baseline", ["--epochs", "1"], NPROC="4",
                           **env)
    assert rc == 0 and cmds[0][:8] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                                       "-m", "density_oe.train"] and cmds[0][-2:] == ["--epochs", "1"]
    rc, cmds, _ = run_node(monkeypatch, capsys, execs, "score_my_run", ["--limit", "5"], SETS="svhn gaussian", **env)
    assert rc == 0 and cmds == [
        ["py", "-m", "density_oe.score", "--ckpt", f"{tmp_path}/o/my_run", "--dataset", "svhn", "--split", "test",
         "--data-root", f"{tmp_path}/d", "--out", f"{tmp_path}/o/scores/my_run/svhn.npy", "--limit", "5"],
        ["py", "-m", "density_oe.score", "--ckpt", f"{tmp_path}/o/my_run", "--dataset", "gaussian",
         "--data-root", f"{tmp_path}/d", "--out", f"{tmp_path}/o/scores/my_run/gaussian.npy", "--limit", "5"]]


def test_run_node_refuses_bad_input_in_one_line(tmp_path, monkeypatch, capsys, execs):
    env = {"DATA_ROOT": str(tmp_path), "OUT": str(tmp_path / "o")}
    for name, extra, msg in (("cifar10_wrn_tune", {}, "unknown node 'cifar10_wrn_tune'"),
                             ("cifar10_eval", {"NPROC": "two"}, "NPROC must be a positive number"),
                             ("--device", {}, "--run-node needs a node name first")):
        rc, cmds, err = run_node(monkeypatch, capsys, execs, name, [], **env, **extra)
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1 and not cmds, err
    rc = cli_main(R.main, ["--out", str(tmp_path), "--run-node", "cifar10_eval", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "--run-node must come first" in err and not execs
    monkeypatch.delenv("DATA_ROOT")
    rc = cli_main(R.main, ["--run-node", "cifar10_eval"])
    err = capsys.readouterr().err
    assert rc == 2 and "set DATA_ROOT to the folder holding the datasets" in err and not execs


def test_the_cifar_eval_node_evaluates_the_runs_there_with_the_papers_columns(tmp_path, monkeypatch, capsys):
    """``study.paper.cifar_eval``: the runs found under OUT, each a column beside the paper's number; a missing run
    is left out with a note; the options go to the evaluation (the steps recorded, not run)."""
    from study.paper import cifar_eval

    calls = {}
    for name in ("evaluate", "compare", "svhn_likelihood"):
        monkeypatch.setattr(getattr(cifar_eval, name), "main", lambda a, n=name: calls.setdefault(n, a) and 0)
    monkeypatch.setattr(cifar_eval, "figures_main", lambda a: calls.setdefault("figures", a) and 0)
    out = tmp_path / "runs"
    for run in ("cifar10_wrn_baseline", "cifar10_wrn_oe_tune", "cifar10_pixelcnn_baseline", "cifar10_pixelcnn_oe_tune"):
        (out / run).mkdir(parents=True)
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("OUT", str(out))
    assert cifar_eval.main(["cifar10", "--limit", "24"]) == 0
    ev = out / "cifar10_eval"
    assert calls["evaluate"] == ["--ckpt", f"msp={out}/cifar10_wrn_baseline", f"msp_oe={out}/cifar10_wrn_oe_tune",
                                 f"pcnn={out}/cifar10_pixelcnn_baseline", f"pcnn_oe={out}/cifar10_pixelcnn_oe_tune",
                                 "--detectors", "auto", "--id-dataset", "cifar10", "--data-root", str(tmp_path),
                                 "--num-to-avg", "10", "--out", str(ev), "--limit", "24"]
    cols = calls["compare"][calls["compare"].index("--columns") + 1:calls["compare"].index("--paper")]
    assert cols == ["MSP=msp:msp", "MSP+OE=msp_oe:msp", "BPP=pcnn:bpd", "BPP+OE=pcnn_oe:bpd"]
    paper = calls["compare"][calls["compare"].index("--paper") + 1:calls["compare"].index("--out")]
    assert paper == ["MSP=c10-wrn-msp-baseline", "MSP+OE=c10-wrn-msp-oe-tune", "BPP=c10-pixelcnn-bpp-baseline",
                     "BPP+OE=c10-pixelcnn-bpp-oe"]
    assert calls["svhn_likelihood"][calls["svhn_likelihood"].index("--baseline"):][:4] == \
        ["--baseline", "pcnn", "--oe", "pcnn_oe"]
    assert "cifar10_wrn_oe_scratch not found; column MSP+OE scratch left out" in capsys.readouterr().err
    calls.clear()
    assert cifar_eval.main(["--help"]) == 0 and "DATA_ROOT" in capsys.readouterr().out and not calls
    calls.clear()   # CIFAR-100: its WRN columns only, its paper keys, and one clear error when there is none
    with pytest.raises(Exception, match="no trained cifar100 runs under"):
        cifar_eval.main(["cifar100"])
    assert not calls
    (out / "cifar100_wrn_oe_scratch").mkdir()
    assert cifar_eval.main(["cifar100"]) == 0 and "svhn_likelihood" not in calls
    assert calls["compare"][calls["compare"].index("--paper") + 1:calls["compare"].index("--out")] == \
        ["MSP+OE scratch=c100-wrn-msp-oe-scratch"]
