"""``scripts/reproduce.sh`` end to end: the whole paper graph at tiny sizes on the format-exact fixture data root,
once with ``--local`` and once with ``--slurm`` against a real SLURM cluster (munge + slurmctld + slurmd on
localhost, ``tests/slurm_cluster.py``), both at the same time.

While they run the fixture plays the cluster and the user:

* SLURM: the CIFAR-10 WRN baseline is held after its first step (``tests/slurm_site``; no other change) and
  sent SIGTERM there, as ``--signal=B:TERM@120`` would; the job checkpoints, requeues itself and the requeued
  job resumes (the test lifts SLURM's 2-minute hold on requeued jobs).  ``--status`` is taken at each stage.
* local: the first ``--local`` is sent SIGTERM after the first step of the CIFAR-10 WRN OE-from-scratch run (exit 75); the second
  ``--local`` on the same ``--out`` skips the finished nodes and resumes that run from its checkpoint.
* a third ``--out`` runs one WRN node as a 2-process DDP job (``srun`` + ``torchrun``, 2 tasks, gloo on the CPU),
  a fourth one node that fails (``--status`` names its log), and ``scripts/slurm_multinode_example.sh`` runs as a
  user submits it, with 2 tasks on the CPU.

Needs root and Debian's slurm-wlm and munge: skipped with the reason otherwise, failed under ``OE_REQUIRE_SLURM=1``
(``.ci/run`` sets it and installs them).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.paper_data import write_paper_data_root
from tests.slurm_cluster import SlurmCluster, _free_ports, unavailable

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tests" / "slurm_site"
pytestmark = pytest.mark.slow
FAST = "--device cpu --num-workers 0 --no-progress --epochs 1 --limit-steps 4"
ARGS = ["--device", "cpu", "--score-sets", "cifar10",
        "--wrn-args", f"--depth 10 --widen-factor 1 --batch-size 8 --oe-batch-size 16 {FAST}",
        "--pixelcnn-args", f"--nr-resnet 1 --nr-filters 8 --nr-logistic-mix 2 --batch-size 8 --oe-batch-size 8 "
                           f"--eval-images 8 {FAST}",
        "--score-args", "--num-workers 0 --limit 10",
        "--eval-args", "--num-to-avg 2 --batch-size 64 --limit 24"]
RESOURCES = '[default]\ngpus_per_node = 0\ncpus_per_task = 1\ntime = "0:15:00"\n'
DDP_RESOURCES = RESOURCES + "[wrn_baseline]\ntasks_per_node = 2\nnproc_per_task = 1\nrdzv_port = {port}\n"
DEADLINE = 540      # seconds for the whole fixture
CLUSTER: list = []  # the running cluster, for the diagnostics of a failure


def _require(reason: str):
    if os.environ.get("OE_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM tests required (OE_REQUIRE_SLURM=1) but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = unavailable()
    if reason:
        _require(reason)
    # a short folder: the munge and slurmd sockets live there (unix socket paths are limited to 107 bytes)
    base = tempfile.mkdtemp(prefix="oeslurm-")
    c = SlurmCluster(base, cpus=2)
    try:
        c.start()
    except Exception as e:
        c.stop()
        pytest.fail(f"the test SLURM cluster did not start: {e}", pytrace=False)
    CLUSTER[:] = [c]
    yield c
    CLUSTER.clear()
    c.stop()
    shutil.rmtree(base, ignore_errors=True)


def reproduce(env: dict, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(["bash", str(ROOT / "scripts" / "reproduce.sh"), *args], env=env, capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"reproduce {' '.join(args[:1])} failed ({r.returncode}):\n{r.stderr[-3000:]}"
    return r


def status(env: dict, out: Path) -> dict[str, str]:
    # --status reads files and asks squeue; without the fixture's start-up hook it needs no torch (fast)
    light = {k: v for k, v in env.items() if k not in ("OE_TEST_CHECKSUMS", "PYTHONPATH")}
    r = reproduce(light, "--status", "--out", str(out))
    return dict(line.split(None, 1) for line in r.stdout.splitlines() if line.strip())


def job_state(env: dict, job: str) -> dict:
    r = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True, timeout=60)
    return dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)


def diagnostics(env: dict, outs: list[Path]) -> str:
    q = subprocess.run(["squeue", "-o", "%i %j %T %r"], env=env, capture_output=True, text=True).stdout
    logs = []
    for out in outs:
        for log in sorted((out / ".reproduce" / "logs").glob("*.log")):
            logs.append(f"--- {log}\n{log.read_text(errors='replace')[-1500:]}")
    daemons = "".join(f"--- {name} log\n{CLUSTER[0]._log(name)}\n" for name in ("slurmctld", "slurmd") if CLUSTER)
    return f"squeue:\n{q}\n" + "\n".join(logs) + "\n" + daemons


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("reproduce")
    data = base / "data"
    checksums = write_paper_data_root(data)
    env = cluster.env(OE_PYTHON=sys.executable, OMP_NUM_THREADS="1", MPLBACKEND="Agg",
                      PYTHONPATH=os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p),
                      OE_TEST_CHECKSUMS=str(checksums), OE_TEST_RANKS_DIR=str(base / "ranks"))
    env.pop("OE_TEST_SLOW_RUN", None)
    (base / "ranks").mkdir()
    res, ddp_res = base / "res.toml", base / "ddp.toml"
    res.write_text(RESOURCES)
    ddp_res.write_text(DDP_RESOURCES.format(port=_free_ports(1)[0]))
    sout, lout, dout, fout = (base / n for n in ("slurm", "local", "ddp", "fail"))
    common = ["--data-root", str(data), *ARGS]
    info: dict = {"base": base, "env": env, "slurm": sout, "local": lout, "ddp": dout, "fail": fout, "status": {}}

    # the node that fails, and the 2-task DDP node, queued first
    info["fail_submit"] = reproduce(env, "--slurm", "--out", str(fout), "--resources", str(res), *common,
                                    "--only", "cifar100_wrn_baseline", "--wrn-args", "--depth 7 " + FAST)
    # the whole graph; its CIFAR-10 WRN baseline is slowed so that it can be preempted mid-run
    senv = {**env, "OE_TEST_SLOW_RUN": "/cifar10_wrn_baseline"}
    t0 = time.time()
    info["submit"] = reproduce(senv, "--slurm", "--out", str(sout), "--resources", str(res), *common)
    info["submit_s"] = time.time() - t0
    info["status"]["submitted"] = status(env, sout)
    jobs = json.loads((sout / ".reproduce" / "slurm_jobs.json").read_text())
    info["jobs"] = jobs
    base_job = jobs["cifar10_wrn_baseline"]["job"]
    # the first --local, slowed in the CIFAR-10 OE-from-scratch run, which gets SIGTERM mid-run
    lenv = {**env, "OE_TEST_SLOW_RUN": "/cifar10_wrn_oe_scratch"}
    local1 = subprocess.Popen(["bash", str(ROOT / "scripts" / "reproduce.sh"), "--local", "--out", str(lout),
                               *common], env=lenv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    local2 = None
    ddp_submitted = False
    stage = "wait-slow"
    end = time.time() + DEADLINE
    try:
        while True:
            if time.time() > end:
                pytest.fail(f"the graphs did not finish in {DEADLINE} s (stage {stage})\n"
                            + diagnostics(env, [sout, lout, dout, fout]), pytrace=False)
            # SLURM: preempt the slowed baseline mid-run, then lift the hold on the requeued job
            if stage == "wait-slow" and (sout / "cifar10_wrn_baseline" / ".slow_steps").exists():
                info["status"]["running"] = status(env, sout)
                r = subprocess.run(["scancel", "--batch", "--signal=TERM", base_job], env=env, capture_output=True,
                                   text=True, timeout=60)
                assert r.returncode == 0, f"scancel: {r.stderr}\n{diagnostics(env, [sout])}"
                (sout / "cifar10_wrn_baseline" / ".slow_release").touch()
                stage = "wait-requeue"
            elif stage == "wait-requeue":
                st = job_state(env, base_job)
                requeued = st.get("JobState") == "PENDING" and int(st.get("Restarts", "0")) >= 1
                if requeued and "requeued_at" not in info:
                    info["requeued_at"] = time.time()
                # the scheduler names the hold (BeginTime) on its next pass; the status is taken once it has
                if requeued and (st.get("Reason") == "BeginTime" or time.time() > info["requeued_at"] + 30):
                    info["status"]["requeued"] = status(env, sout)
                    subprocess.run(["scontrol", "update", f"JobId={base_job}", "StartTime=now"], env=env,
                                   check=True, timeout=60)
                    stage = "wait-done"
                elif st.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
                    pytest.fail(f"the preempted job ended {st.get('JobState')} instead of being requeued\n"
                                + diagnostics(env, [sout]), pytrace=False)
            # local: SIGTERM the first --local in its slowed run, then continue with a second --local
            if local2 is None and local1.poll() is None and (lout / "cifar10_wrn_oe_scratch" / ".slow_steps").exists():
                if "interrupted_at" not in info:
                    info["interrupted_at"] = time.time()
                    os.kill(local1.pid, signal.SIGTERM)
                    time.sleep(0.5)
                    (lout / "cifar10_wrn_oe_scratch" / ".slow_release").touch()
            if local2 is None and local1.poll() is not None:
                info["local1"] = (local1.returncode, *local1.communicate())
                local2 = subprocess.Popen(["bash", str(ROOT / "scripts" / "reproduce.sh"), "--local", "--out",
                                           str(lout), *common], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, start_new_session=True)
            if not ddp_submitted and stage == "wait-done":
                info["ddp_submit"] = reproduce(env, "--slurm", "--out", str(dout), "--resources", str(ddp_res),
                                               *common, "--only", "cifar10_wrn_baseline")
                info["example_job"] = submit_example(env, base, data)
                ddp_submitted = True
            if local2 is not None and local2.poll() is not None and "local2" not in info:
                info["local2"] = (local2.returncode, *local2.communicate())
            if ddp_submitted and "local2" in info:
                q = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True)
                if q.returncode == 0 and not q.stdout.strip():
                    break
            time.sleep(0.2)
    finally:
        for p in (local1, local2):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    info["status"]["done"] = status(env, sout)
    info["status"]["fail"] = status(env, fout)
    return info


def submit_example(env: dict, base: Path, data: Path) -> str:
    """scripts/slurm_multinode_example.sh as a user submits it, on the CPU: 2 tasks (torchrun launchers) on the
    one node stand in for 2 nodes, one process each, gloo."""

    (base / "example_ranks").mkdir()
    eenv = {**env, "DATA_ROOT": str(data), "OUT": str(base / "example"), "DEVICE": "cpu", "GPUS_PER_NODE": "1",
            "NNODES": "2", "RDZV_PORT": str(_free_ports(1)[0]), "OE_TEST_RANKS_DIR": str(base / "example_ranks")}
    r = subprocess.run(["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0",
                        "--cpus-per-task=1", "--time=10:00", f"--output={base / 'example.log'}",
                        str(ROOT / "scripts" / "slurm_multinode_example.sh"), "--depth", "10", "--widen-factor", "1",
                        "--batch-size", "8", *FAST.split()], env=eenv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"sbatch of the multinode example: {r.stderr}"
    return r.stdout.strip().split(";")[0]


def _times(log: Path) -> tuple[list[float], float]:
    """Start times of every attempt and the finish time, from a job log's '== NODE: ...' lines."""
    text = log.read_text()
    starts = [float(t) for t in re.findall(r"^== \S+: SLURM job \d+ .* start ([\d.]+)$", text, re.M)]
    fin = re.findall(r"^== \S+: finished at ([\d.]+)$", text, re.M)
    assert starts and fin, f"{log} has no start/finish lines:\n{text[-2000:]}"
    return starts, float(fin[-1])


def test_slurm_jobs_ran_in_dependency_order_with_afterok(runs):
    from study.paper import saved_graph

    out = runs["slurm"]
    graph = {n.name: n for n in saved_graph(out)}
    jobs = runs["jobs"]
    assert set(jobs) == set(graph)
    for name, n in graph.items():
        assert sorted(jobs[name]["after"]) == sorted(jobs[d]["job"] for d in n.deps)
        script = Path(jobs[name]["script"]).read_text()
        assert "#SBATCH --signal=B:TERM@120" in script and "#SBATCH --requeue" in script
        starts, fin = _times(out / ".reproduce" / "logs" / f"{name}.log")
        for d in n.deps:
            _, dep_fin = _times(out / ".reproduce" / "logs" / f"{d}.log")
            assert starts[-1] >= dep_fin, f"{name} started before {d} finished"


def test_slurm_and_local_give_the_same_tables(runs):
    for rel in ("cifar10_eval/compare/compare.md", "cifar100_eval/compare/compare.md",
                "cifar10_eval/likelihood/likelihood.md", "cifar10_eval/results.md", "cifar100_eval/results.md"):
        a, b = (runs["slurm"] / rel).read_text(), (runs["local"] / rel).read_text()
        assert a == b, rel
    md = (runs["slurm"] / "cifar10_eval" / "compare" / "compare.md").read_text()
    assert "| OOD set | MSP | MSP+OE | MSP+OE scratch | BPP | BPP+OE |" in md
    for run in ("cifar10_wrn_baseline", "cifar10_pixelcnn_oe_tune"):
        rows = [json.loads((runs[k] / run / "metrics.json").read_text()) for k in ("slurm", "local")]
        assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]
    assert (runs["slurm"] / "scores" / "cifar10_pixelcnn_oe_tune" / "cifar10.npy").exists()


def test_a_preempted_slurm_job_is_requeued_and_resumes_from_its_checkpoint(runs):
    out = runs["slurm"]
    log = (out / ".reproduce" / "logs" / "cifar10_wrn_baseline.log").read_text()
    assert "== SIGTERM: passing it on to the run" in log
    assert "received SIGTERM: finishing the current step, then checkpointing" in log
    assert "requeueing job" in log and "(restart 1)" in log
    m = re.search(r"resuming \S+cifar10_wrn_baseline at epoch 1, step (\d+)", log)
    assert m and 1 <= int(m.group(1)) < 4, log[-3000:]
    starts, _ = _times(out / ".reproduce" / "logs" / "cifar10_wrn_baseline.log")
    assert len(starts) == 2
    st = job_state(runs["env"], runs["jobs"]["cifar10_wrn_baseline"]["job"])
    assert st["JobState"] == "COMPLETED" and st["Restarts"] == "1"


def test_status_is_right_at_each_stage(runs):
    s = runs["status"]
    names = list(s["done"])
    assert all(v == "finished" for v in s["done"].values()), s["done"]
    sub = s["submitted"]
    assert list(sub) == names
    assert all(v.split()[0] in ("pending", "running", "finished") for v in sub.values()), sub
    for name in ("cifar10_wrn_oe_tune", "cifar10_eval", "cifar100_eval"):
        assert sub[name].startswith("pending") and "Dependency" in sub[name], sub[name]
    assert s["running"]["cifar10_wrn_baseline"].startswith("running (SLURM job")
    assert s["running"]["cifar10_eval"].startswith("pending")
    req = s["requeued"]["cifar10_wrn_baseline"]
    assert req.startswith("pending (SLURM job"), req
    assert s["requeued"]["cifar10_wrn_oe_tune"].startswith("pending")
    fail = s["fail"]
    log = runs["fail"] / ".reproduce" / "logs" / "cifar100_wrn_baseline.log"
    assert list(fail) == list(s["done"])   # the whole graph; only one node was submitted there
    assert all(v == "not started" for k, v in fail.items() if k != "cifar100_wrn_baseline"), fail
    assert fail["cifar100_wrn_baseline"].startswith("failed (exit 2 in SLURM job") and str(log) in fail[
        "cifar100_wrn_baseline"]
    assert "depth" in log.read_text()


def test_a_second_local_run_continues_where_the_first_stopped(runs):
    rc1, _, err1 = runs["local1"]
    assert rc1 == 75, err1[-2000:]
    assert "interrupted in cifar10_wrn_oe_scratch" in err1
    rc2, _, err2 = runs["local2"]
    assert rc2 == 0, err2[-3000:]
    for name in ("cifar10_wrn_baseline", "cifar10_wrn_oe_tune"):
        assert f"{name}: finished, skipped" in err2
    assert "cifar10_wrn_oe_scratch: WRN-40-2 OE from scratch on CIFAR-10; a checkpoint is there: it resumes" in err2
    assert re.search(r"resuming \S+cifar10_wrn_oe_scratch at epoch 1, step [123] ", err2), err2[-3000:]
    assert "all 12 nodes finished" in err2


def test_a_ddp_node_runs_as_srun_torchrun_with_two_tasks_on_gloo(runs):
    out = runs["ddp"]
    script = (out / ".reproduce" / "jobs" / "cifar10_wrn_baseline.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=2" in script
    assert "srun --kill-on-bad-exit=1" in script and "torch.distributed.run --nnodes $SLURM_NTASKS" in script
    assert "--rdzv_backend c10d" in script
    ranks = sorted(p.name for p in (runs["base"] / "ranks").iterdir())
    assert ranks == ["rank0-of-2-gloo", "rank1-of-2-gloo"], ranks
    rows = json.loads((out / "cifar10_wrn_baseline" / "metrics.json").read_text())
    assert len(rows) == 1
    st = status(runs["env"], out)
    assert st["cifar10_wrn_baseline"] == "finished" and st["cifar10_wrn_oe_tune"] == "not started"


def test_the_multinode_example_runs_under_slurm_with_two_tasks_on_gloo(runs):
    st = job_state(runs["env"], runs["example_job"])
    log = (runs["base"] / "example.log").read_text(errors="replace")
    assert st["JobState"] == "COMPLETED", log[-3000:]
    ranks = sorted(p.name for p in (runs["base"] / "example_ranks").iterdir())
    assert ranks == ["rank0-of-2-gloo", "rank1-of-2-gloo"], (ranks, log[-3000:])
    cfg = json.loads((runs["base"] / "example" / "cifar10_wrn_baseline" / "config.json").read_text())
    assert cfg["mode"] == "baseline" and cfg["device"] == "cpu" and not cfg["sync_bn"]
    assert len(json.loads((runs["base"] / "example" / "cifar10_wrn_baseline" / "metrics.json").read_text())) == 1
