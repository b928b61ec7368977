"""``scripts/reproduce.sh`` / ``python -m study.reproduce`` without a cluster: --help, --plan, the graph against
the single scripts, bad input (one line, nothing submitted), the job scripts, and --slurm/--status through fake
``sbatch``/``squeue`` commands.  The real SLURM runs are in ``tests/test_reproduce_slurm.py``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from density_oe.config import DensityConfig
from oe_core.cli_config import parse_config
from study import paper as R
from oe_core.errors import cli_main
from tests.paper_data import apply_checksums, write_paper_data_root

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPTS = {f"{ds}_wrn_{m}": f"{ds}_wrn_{m}.sh" for ds in ("cifar10", "cifar100")
                 for m in ("baseline", "oe_tune", "oe_scratch")}
TRAIN_SCRIPTS.update({"cifar10_pixelcnn_baseline": "density_cifar10_baseline.sh",
                      "cifar10_pixelcnn_oe_tune": "density_cifar10_oe_tune.sh",
                      "cifar10_glow_baseline": "density_cifar10_glow_baseline.sh",
                      "cifar10_glow_oe_tune": "density_cifar10_glow_oe_tune.sh",
                      "cifar10_diffusion_baseline": "density_cifar10_diffusion_baseline.sh",
                      "cifar10_diffusion_oe_tune": "density_cifar10_diffusion_oe_tune.sh",
                      "cifar10_vae_baseline": "density_cifar10_vae_baseline.sh",
                      "cifar10_vae_oe_tune": "density_cifar10_vae_oe_tune.sh"})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The fixture data root, with torchvision's md5 tables pointed at it for this module only."""
    from torchvision.datasets import CIFAR10, CIFAR100, SVHN

    saved = [(cls, name, getattr(cls, name)) for cls in (CIFAR10, CIFAR100) for name in ("train_list", "test_list",
                                                                                          "meta")]
    saved.append((SVHN, "split_list", SVHN.split_list))
    root = tmp_path_factory.mktemp("data")
    apply_checksums(write_paper_data_root(root, n=8))
    yield root
    for cls, name, value in saved:
        setattr(cls, name, value)


def run(argv, capsys) -> tuple[int, str, str]:
    rc = cli_main(R.main, [str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def fake_bin(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("#!/bin/bash\n" + body + "\n")
    p.chmod(0o755)


def test_help_explains_every_option():
    text = subprocess.run(["bash", str(ROOT / "scripts" / "reproduce.sh"), "--help"], capture_output=True,
                          text=True, env={**os.environ, "OE_PYTHON": sys.executable}, timeout=120).stdout
    for action in R.parser()._actions:
        for opt in action.option_strings:
            assert opt in text, opt
        assert action.help and len(action.help) > 15, action.option_strings
    for word in ("--plan", "--local", "--slurm", "--status", "exit codes", "reproduce_resources.toml"):
        assert word in text


def test_plan_lists_the_graph_in_dependency_order_with_commands_and_an_estimate(tmp_path, capsys):
    out = tmp_path / "runs"
    rc, text, _ = run(["--plan", "--data-root", tmp_path, "--out", out, "--device", "cuda", "--amp", "bf16"], capsys)
    assert rc == 0
    names = [line.split()[1] for line in text.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    graph = {n.name: n for n in R.build_graph(R.parser().parse_args(["--plan"]), "python")}
    assert sorted(names) == sorted(graph) and len(names) == 12
    for i, name in enumerate(names):
        assert all(names.index(d) < i for d in graph[name].deps), name
    assert "python -m classifiers_oe.train --mode oe_tune --dataset cifar10" in text
    assert f"--init {out}/cifar10_wrn_baseline" in text
    assert "python -m study.paper.cifar_eval cifar10 --device cuda" in text
    assert (f"python -m density_oe.score --ckpt {out}/cifar10_pixelcnn_oe_tune --dataset svhn --split test "
            f"--data-root {tmp_path} --out {out}/scores/cifar10_pixelcnn_oe_tune/svhn.npy --device cuda") in text
    assert "benchmarks/results/cpu-bf16.json (CPU AMD EPYC, 2 cores, bf16" in text
    assert "no GPU measurement there yet" in text
    assert "finished in " in text and ": 0 of 12" in text
    # a finished run is shown as such and leaves the estimate
    run_dir = out / "cifar10_wrn_baseline"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"epochs": 1}))
    (run_dir / "metrics.json").write_text(json.dumps([{"epoch": 1}]))
    (run_dir / "checkpoint.pt").write_bytes(b"x")
    rc, text2, _ = run(["--plan", "--data-root", tmp_path, "--out", out], capsys)
    assert "1. cifar10_wrn_baseline  [wrn_baseline]  after: -  est: " in text2 and "h  finished" in text2
    assert ": 1 of 12" in text2 and "benchmarks/results/cpu.json" in text2


def test_plan_with_glow_and_the_ports_weights(tmp_path, capsys):
    pth = tmp_path / "pcnn.pth"
    pth.write_bytes(b"x")
    rc, text, _ = run(["--plan", "--data-root", tmp_path, "--out", tmp_path / "o", "--glow",
                       "--pixelcnn-weights", pth], capsys)
    assert rc == 0 and "17 of 17 nodes" in text
    assert f"python -m density_oe.port --src {pth} --out {tmp_path / 'o'}/cifar10_pixelcnn_baseline" in text
    assert "cifar10_glow_eval" in text and "analysis.svhn_likelihood" in text
    assert "--batch-size 512 --warmup-steps 970 --lr-decay 1.0" in text   # lr 1e-3 is the trainer's default
    glow = trained(tmp_path, "--glow")
    assert (glow["cifar10_glow_baseline"].batch_size, glow["cifar10_glow_baseline"].lr) == (512, 1e-3)
    assert (glow["cifar10_glow_baseline"].warmup_steps, glow["cifar10_glow_baseline"].lr_decay) == (970, 1)
    assert (glow["cifar10_glow_oe_tune"].lr, glow["cifar10_glow_oe_tune"].epochs) == (2e-4, 2)


def test_plan_with_diffusion_adds_its_runs_scores_and_evaluation(tmp_path, capsys):
    rc, text, _ = run(["--plan", "--data-root", tmp_path, "--out", tmp_path / "o", "--diffusion",
                       "--diffusion-args", "--epochs 7"], capsys)
    assert rc == 0 and "17 of 17 nodes" in text
    for node in ("cifar10_diffusion_baseline", "cifar10_diffusion_oe_tune", "score_cifar10_diffusion_oe_tune",
                 "cifar10_diffusion_eval"):
        assert node in text, node
    assert "--lr 0.0002 --beta1 0.9 --beta2 0.99 --warmup-steps 100 --lr-decay 1.0 --ema-decay 0.9999" in text
    base = trained(tmp_path, "--diffusion")["cifar10_diffusion_baseline"]
    assert (base.lr, base.beta1, base.beta2, base.warmup_steps, base.lr_decay, base.ema_decay, base.batch_size) == \
        (2e-4, 0.9, 0.99, 100, 1, 0.9999, 128)
    assert "--diffusion-train-t-samples 4" in text and "--epochs 7" in text and "cifar10_glow" not in text


def test_plan_with_the_vae(tmp_path, capsys):
    rc, text, _ = run(["--plan", "--data-root", tmp_path, "--out", tmp_path / "o", "--vae"], capsys)
    assert rc == 0 and "17 of 17 nodes" in text
    assert "--lr 0.0003 --lr-decay 1.0 --epochs 200" in text
    base = trained(tmp_path, "--vae")["cifar10_vae_baseline"]
    assert (base.batch_size, base.lr, base.lr_decay, base.epochs) == (128, 3e-4, 1, 200)
    assert "cifar10_vae_eval" in text and "likelihood_regret" in text and "analysis.bound_gap" in text
    # the training and score nodes are estimated from the vae_train / vae_score rows; the evaluation is not
    for node in ("cifar10_vae_baseline", "cifar10_vae_oe_tune", "score_cifar10_vae_baseline",
                 "score_cifar10_vae_oe_tune"):
        line = next(ln for ln in text.splitlines() if f". {node}  [" in ln)
        assert "est: n/a" not in line and "est: " in line, line
    assert "(+ 1 nodes without a measured rate)" in text


def trained(tmp_path, *flags: str) -> dict:
    """The density training nodes of the graph with ``flags``, their commands read by the trainer's own CLI."""
    o = R.parser().parse_args(["--plan", *flags])
    o.out, o.data_root = tmp_path / "runs", tmp_path
    return {n.name: parse_config(DensityConfig, n.cmds[0][3:]) for n in R.build_graph(o, "python")
            if n.module == "density_oe.train"}


def test_training_nodes_run_exactly_what_the_single_scripts_run(tmp_path, monkeypatch):
    """Each training script runs its node (a fake python records it), and that node, run on its own, execs exactly
    the graph's command: the script's trainer command is the node's."""
    from study.paper import local
    from tests.test_paper_scripts import record_script

    o = R.parser().parse_args(["--plan", "--glow", "--vae", "--diffusion"])
    o.out, o.data_root = tmp_path / "runs", tmp_path / "data"
    nodes = {n.name: n for n in R.build_graph(o, sys.executable)}
    execed = []
    monkeypatch.setattr(local.os, "execvpe", lambda path, argv, env: execed.append(argv))
    monkeypatch.setenv("OE_PYTHON", sys.executable)
    monkeypatch.setenv("DATA_ROOT", str(o.data_root))
    monkeypatch.setenv("OUT", str(o.out))
    monkeypatch.delenv("NPROC", raising=False)
    for name, script in TRAIN_SCRIPTS.items():
        argv, _ = record_script(tmp_path, script, [], {})
        assert argv == ["-m", "study.reproduce", "--run-node", name], script
        assert cli_main(R.main, argv[2:]) == 0
        assert execed.pop() == nodes[name].cmds[0] and nodes[name].module in nodes[name].cmds[0], name


def test_bad_input_is_one_line_before_anything_runs(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "runs"
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--local", "--data-root", empty, "--out", out], "missing data set for node cifar10_wrn_baseline: cifar10"),
        (["--local", "--data-root", data, "--out", out, "--only", "nope"], "unknown node 'nope' in --only"),
        (["--local", "--data-root", data, "--out", out, "--skip", "cifar10_eval", "x"], "unknown node 'x' in --skip"),
        (["--local", "--data-root", data, "--out", out, "--only", "cifar10_wrn_oe_tune"],
         "node cifar10_wrn_oe_tune needs cifar10_wrn_baseline, which is neither finished"),
        (["--local", "--out", out], "--data-root is required"),
        (["--local", "--data-root", data, "--out", out, "--outliers", "nosuchset"], "nosuchset"),
    ]
    monkeypatch.delenv("DATA_ROOT", raising=False)
    for argv, msg in cases:
        rc, _, err = run(argv, capsys)
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (out / ".reproduce" / "logs").exists()
    # sbatch not found
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))
    rc, _, err = run(["--slurm", "--data-root", data, "--out", out], capsys)
    assert rc == 2 and err.strip() == "error: sbatch not found on PATH: --slurm needs a SLURM login node (or run " \
                                      "--local)"


def test_an_out_held_by_another_run_is_refused(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "runs"
    with R.out_lock(out, "--local"):
        rc, _, err = run(["--local", "--data-root", data, "--out", out], capsys)
    assert rc == 2 and f"--out {str(out)!r} is held by another reproduce run (pid {os.getpid()}, --local)" in err
    # SLURM jobs of an earlier --slurm still queued: refused by --local and --slurm alike
    bin_ = tmp_path / "bin"
    fake_bin(bin_, "squeue", 'echo "41|RUNNING|None"; echo "42|PENDING|Dependency"')
    fake_bin(bin_, "sbatch", 'echo "should not be called" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    (out / ".reproduce").mkdir(parents=True, exist_ok=True)
    (out / ".reproduce" / "slurm_jobs.json").write_text(json.dumps(
        {"cifar10_wrn_baseline": {"job": "41", "after": []}, "cifar10_wrn_oe_tune": {"job": "42", "after": ["41"]}}))
    for mode in ("--local", "--slurm"):
        rc, _, err = run([mode, "--data-root", data, "--out", out], capsys)
        assert rc == 2 and "SLURM jobs still queued or running: cifar10_wrn_baseline (job 41, running)" in err, err
        assert len(err.strip().splitlines()) == 1
    rc, text, _ = run(["--status", "--out", out], capsys)
    st = dict(line.split(None, 1) for line in text.splitlines())
    assert st["cifar10_wrn_baseline"].startswith("running (SLURM job 41; log ")
    assert st["cifar10_wrn_oe_tune"] == "pending (SLURM job 42, Dependency)"
    assert st["cifar100_eval"] == "not started"


def test_slurm_submits_one_job_per_node_chained_with_afterok(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "runs"
    bin_ = tmp_path / "bin"
    calls = tmp_path / "calls"
    fake_bin(bin_, "sbatch", f'n=$(( $(cat {calls} 2>/dev/null | wc -l) + 100 )); echo "$*" >> {calls}; '
                             'echo "$n;cluster"')
    fake_bin(bin_, "squeue", "exit 0")
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    res = tmp_path / "res.toml"
    res.write_text('[default]\npartition = "gpu"\n[wrn_baseline]\nnodes = 2\ngpus_per_node = 4\ntime = "1:00:00"\n')
    rc, text, err = run(["--slurm", "--data-root", data, "--out", out, "--resources", res, "--device", "cuda"],
                        capsys)
    assert rc == 0, err
    lines = [line.split() for line in text.splitlines()]
    ids = {parts[0]: parts[2] for parts in lines}
    assert len(ids) == 12 and sorted(ids.values()) == [str(i) for i in range(100, 112)]
    graph = {n.name: n for n in R.saved_graph(out)}
    sbatch = calls.read_text().splitlines()
    for parts in lines:
        name = parts[0]
        deps = [ids[d] for d in graph[name].deps]
        call = next(c for c in sbatch if c.endswith(f"/{name}.sbatch"))
        if deps:
            assert f"--dependency=afterok:{':'.join(deps)}" in call and parts[3:] == ["after", ",".join(deps)]
        else:
            assert "--dependency" not in call
    saved = (out / ".reproduce" / "slurm_jobs.txt").read_text().split()
    assert dict(zip(saved[::2], saved[1::2])) == ids
    base = (out / ".reproduce" / "jobs" / "cifar10_wrn_baseline.sbatch").read_text()
    for line in ("#SBATCH --signal=B:TERM@120", "#SBATCH --requeue", "#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=1:00:00", "#SBATCH --open-mode=append",
                 f"#SBATCH --output={out}/.reproduce/logs/cifar10_wrn_baseline.log"):
        assert line in base.splitlines(), line
    assert ("srun --kill-on-bad-exit=1 " in base and "-m torch.distributed.run --nnodes $SLURM_NTASKS "
            "--nproc_per_node 4 --rdzv_id $SLURM_JOB_ID --rdzv_backend c10d --rdzv_endpoint $HEAD_NODE:29500 "
            "-m classifiers_oe.train --mode baseline" in base)
    tune = (out / ".reproduce" / "jobs" / "cifar10_wrn_oe_tune.sbatch").read_text()
    assert "srun" not in tune and "#SBATCH --gpus-per-node=1" in tune and "#SBATCH --partition=gpu" in tune
    pcnn = (out / ".reproduce" / "jobs" / "cifar10_pixelcnn_baseline.sbatch").read_text()
    assert "#SBATCH --gpus-per-node=4" in pcnn and "--nproc_per_node 4" in pcnn and "#SBATCH --time=48:00:00" in pcnn
    for script in (out / ".reproduce" / "jobs").glob("*.sbatch"):
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_resources_file_errors_are_one_line(tmp_path, capsys, data, monkeypatch):
    bin_ = tmp_path / "bin"
    fake_bin(bin_, "sbatch", "exit 1")
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    for body, msg in (('[wrn_baseline]\ngpu = 2\n', "unknown key 'gpu' in [wrn_baseline]"),
                      ('[wrn]\ntime = "1:00:00"\n', "unknown section [wrn]"),
                      ('[default]\nnodes = "two"\n', "[default] nodes must be a int"),
                      ('[default\n', "resources file")):
        res = tmp_path / "r.toml"
        res.write_text(body)
        rc, _, err = run(["--slurm", "--data-root", data, "--out", tmp_path / "o", "--resources", res], capsys)
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    merged = R.load_resources(None)
    assert merged["wrn_oe_tune"]["time"] == "4:00:00" and merged["wrn_oe_tune"]["gpus_per_node"] == 1
    res.write_text('[default]\ngpus_per_node = 0\n[score]\ntime = "0:10:00"\n')
    merged = R.load_resources(str(res))
    assert merged["pixelcnn_baseline"]["gpus_per_node"] == 0 and merged["score"]["time"] == "0:10:00"
    assert merged["pixelcnn_baseline"]["time"] == "48:00:00"


def test_status_without_slurm_reads_the_out_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    o = R.parser().parse_args(["--status"])
    o.out, o.data_root = out, tmp_path
    graph = R.build_graph(o, "python")
    R.save_graph(out, graph)
    R.mark(out, "cifar10_eval", "failed", f"exit 1; log {R.log_path(out, 'cifar10_eval')}")
    run_dir = out / "cifar10_wrn_oe_tune"
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"x")
    with R.out_lock(out, "--local") as lock:
        lock.note(", running cifar10_wrn_baseline")
        rc, text, err = run(["--status", "--out", out], capsys)
    st = dict(line.split(None, 1) for line in text.splitlines())
    summary = dict(reversed(part.split(" ", 1)) for part in err.strip().splitlines()[-1].split(", "))
    assert summary == {"running": "1", "failed": "1", "not started": str(len(st) - 2)}   # "12 not" before
    assert st["cifar10_wrn_baseline"].startswith(f"running (local, pid {os.getpid()}; log ")
    assert st["cifar10_eval"] == f"failed (exit 1; log {out}/.reproduce/logs/cifar10_eval.log)"
    assert st["cifar10_wrn_oe_tune"] == "not started; a checkpoint is there: it resumes"
    assert st["cifar100_eval"] == "not started"


def test_local_runs_a_training_node_through_torchrun_when_more_gpus_are_asked(tmp_path, capsys):
    o = R.parser().parse_args(["--local"])
    o.out, o.data_root = tmp_path / "runs", tmp_path
    nodes = {n.name: n for n in R.build_graph(o, "py")}
    base = nodes["cifar10_wrn_baseline"]
    assert R.local_cmds(base, 1) == base.cmds
    assert R.local_cmds(base, 4) == [["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                                      "-m", "classifiers_oe.train", *base.cmds[0][3:]]]
    assert R.local_cmds(nodes["cifar10_eval"], 4) == nodes["cifar10_eval"].cmds   # not a training node
    rc, _, err = run(["--local", "--data-root", tmp_path, "--out", tmp_path / "o", "--pixelcnn-weights",
                      tmp_path / "missing.pth"], capsys)
    assert rc == 2 and "--pixelcnn-weights" in err and "no such file" in err


def test_estimates_and_epochs_come_from_the_trainers_configs(tmp_path, monkeypatch):
    """No epoch count is written in the graph: the estimates read the resolved configs (defaults, recipe, options)."""
    from classifiers_oe import config as clf_config
    from density_oe import config as density_config

    def graph(*argv):
        o = R.parser().parse_args(["--plan", *argv])
        o.out, o.data_root = tmp_path / "runs", tmp_path
        return {n.name: n for n in R.build_graph(o, "python")}

    g = graph("--diffusion", "--vae")
    assert g["cifar10_wrn_oe_tune"].estimate == ["wrn_oe_step", 10 * 50000 * 3]       # 128 in + 256 outliers
    assert g["cifar10_wrn_baseline"].estimate == ["wrn_oe_step", 100 * 50000]
    assert g["cifar10_pixelcnn_baseline"].estimate == ["train_paper", 300 * 50000]
    assert g["cifar10_pixelcnn_oe_tune"].estimate == ["train_paper", 2 * 50000 * 2]   # 64 in + 64 outliers
    assert g["cifar10_diffusion_baseline"].estimate == ["diffusion_train", 300 * 50000]
    assert g["cifar10_vae_baseline"].estimate == ["vae_train", 200 * 50000]
    assert graph("--wrn-args", "--epochs 4")["cifar100_wrn_oe_scratch"].estimate == ["wrn_oe_step", 4 * 50000 * 3]
    monkeypatch.setitem(clf_config.MODE_DEFAULTS, "oe_tune", {"epochs": 7, "lr": 0.001})
    monkeypatch.setitem(density_config.MODE_DEFAULTS, "baseline", {**density_config.MODE_DEFAULTS["baseline"],
                                                                    "epochs": 11})
    g = graph("--diffusion")
    assert g["cifar10_wrn_oe_tune"].estimate == ["wrn_oe_step", 7 * 50000 * 3]
    assert g["cifar10_pixelcnn_baseline"].estimate == ["train_paper", 11 * 50000]
    assert "--epochs" not in g["cifar10_pixelcnn_baseline"].cmds[0]
