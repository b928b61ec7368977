"""Every tool that writes files: an unwritable output is one error line (exit 2) before any model or data work;
a closed output pipe ends with exit 141 and Ctrl-C with 130, each with one line and no traceback; help texts
state each default once."""
from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oe_core.errors import cli_main

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ["density_oe.sample", "density_oe.score", "density_oe.port", "analysis.figures", "analysis.compare",
         "analysis.svhn_likelihood", "analysis.evaluate", "study.mini.study", "analysis.regenerate",
         "analysis.trajectory", "analysis.bound_gap"]


def _main(module: str):
    import importlib
    mod = importlib.import_module(module if module != "analysis.figures" else "analysis.figures.__main__")
    return mod.main


def _argv(module: str, out: str, missing: str) -> list[str]:
    """Arguments whose inputs do not exist (the output check must come first) and whose output is ``out``."""
    return {
        "density_oe.sample": ["--ckpt", missing, "--out", f"{out}/s.png", "--device", "cpu"],
        "density_oe.score": ["--ckpt", missing, "--dataset", "gaussian", "--out", f"{out}/s.npy", "--device", "cpu"],
        "density_oe.port": ["--src", missing, "--out", out],
        "analysis.figures": ["--results", missing, "--out", out],
        "analysis.compare": ["--results", missing, "--out", out],
        "analysis.svhn_likelihood": ["--results", missing, "--baseline", "a", "--oe", "b", "--out", out],
        "analysis.evaluate": ["--ckpt", f"a={missing}", "--id-dataset", "gaussian", "--ood", "blobs", "--out", out],
        "study.mini.study": ["--preset", "tiny", "--out", out],
        "analysis.regenerate": [out],
        "analysis.trajectory": ["--runs", f"a={missing}", "--out", out],
        "analysis.bound_gap": ["--baseline", missing, "--oe", missing, "--id-dataset", "gaussian", "--ood", "blobs",
                               "--out", out],
    }[module]


@pytest.mark.parametrize("module", TOOLS)
def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys, module):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = cli_main(_main(module), _argv(module, str(blocker / "sub"), str(tmp_path / "missing")))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    option = "DIR" if module == "analysis.regenerate" else "--out"
    assert f"error: {option} " in err[0] and "is not writable" in err[0] and "missing" not in err[0], err


@pytest.mark.parametrize("module", TOOLS)
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch, module):
    import oe_core.outputs as outputs

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    # the first thing every tool does after parsing is its output check: interrupt it there
    monkeypatch.setattr(outputs.tempfile, "TemporaryFile", interrupted)
    rc = cli_main(_main(module), _argv(module, str(tmp_path / "out"), str(tmp_path / "missing")))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and err == ["interrupted (Ctrl-C)"], err


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("module", ["analysis.evaluate", "analysis.figures", "analysis.compare",
                                    "analysis.svhn_likelihood"])
def test_closed_pipe_after_the_work_is_exit_141(tmp_path, capsys, monkeypatch, module):
    """The tools that print their results to stdout (the density tools print to stderr only)."""
    from tests.test_analysis_figures import _evaluated
    results = _evaluated(tmp_path)
    capsys.readouterr()
    argv = {"analysis.evaluate": ["--from-results", str(results), "--out", str(results.parent)],
            "analysis.figures": ["--results", str(results), "--formats", "png", "--dpi", "20"],
            "analysis.compare": ["--results", str(results), "--out", str(tmp_path / "cmp")],
            "analysis.svhn_likelihood": ["--results", str(results), "--baseline", "pcnn", "--oe", "pcnn"]}[module]
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    rc = cli_main(_main(module), argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 141 and err == ["stopped: the output pipe was closed"], err


@pytest.mark.parametrize("argv", [["analysis.evaluate", "--list-detectors"], ["analysis.compare", "--list-paper"],
                                  ["oe_core.data"]])
def test_closed_pipe_is_exit_141_and_one_line(argv):
    """`tool | head -0`: the reader of stdout is gone before the tool writes."""
    p = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()
    err = p.stderr.read().decode().strip().splitlines()
    assert p.wait(timeout=120) == 141 and err == ["stopped: the output pipe was closed"], err


def test_ctrl_c_during_sampling_ends_quietly(tmp_path):
    """A real SIGINT in the middle of the work (sampling a tiny model, progress bar on stderr)."""
    import torch

    from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
    from oe_core.cli_config import config_to_dict
    from oe_core.run import save_checkpoint
    net = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=4, nr_logistic_mix=1))
    save_checkpoint(tmp_path / "d", {"kind": "density", "config": config_to_dict(net.cfg), "model": net.state_dict(),
                                     "eval_model": None}, kind="density", step=0, epoch=0)
    del torch
    p = subprocess.Popen([sys.executable, "-m", "density_oe.sample", "--ckpt", str(tmp_path / "d"), "--n", "64",
                          "--image-size", "64", "--force-size", "--out", str(tmp_path / "s.png"), "--device", "cpu"],
                         stderr=subprocess.PIPE, cwd=ROOT,
                         # a shell without job control starts background jobs with SIGINT ignored, and Python keeps
                         # an inherited SIG_IGN: give the tool the default disposition a terminal's process has
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = p.stderr.readline().decode()  # "sampling 64 images of 64x64": the tool is inside its work
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("density_oe.sample did not stop within 60 s of SIGINT") from None
    err = err.decode().strip().splitlines()
    assert first.startswith("sampling 64 images of 64x64")
    assert p.returncode == 130 and err == ["interrupted (Ctrl-C)"], err
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("module", TOOLS + ["density_oe.train", "classifiers_oe.train", "benchmarks.run",
                                    "benchmarks.profile", "study.mini_benchmark.make_v3_photos",
                                    "study.mini_benchmark.make_v4_photos",
                                    "study.mini.select"])
def test_help_states_each_default_once(capsys, module):
    with pytest.raises(SystemExit):
        _main(module)(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    options = text.split(" --")
    twice = [o[:80] for o in options if len(re.findall(r"[(;]\s*(?:default|unset)\b", o)) > 1]
    assert not twice, twice
