"""No file the suite reads can run code: crafted pickle payloads in three forms go through every CLI path that
reads a checkpoint or weights file, and each refuses with exit 2 and one line, while the payload never runs
(the marker folder it would create stays absent)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis.evaluate import main as evaluate_main
from analysis.regenerate import main as regenerate_main
from classifiers_oe import train as cls_train
from density_oe import port, sample, score
from density_oe import train as pcnn_train
from oe_core.errors import CheckpointError, UnsafeFileError, cli_main
from oe_core.run.checkpoint import FORMAT_V1, MAGIC, checkpoint_format, load_checkpoint
from tests.test_analysis_evaluate import classifier_ckpt
from tests.test_bad_input import TINY_CLS, TINY_PCNN

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this calls ``os.mkdir(marker)``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_payload(path: Path, form: str, marker: Path) -> Path:
    """A file in one of the forms a shared checkpoint could take, holding the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"kind": "density", "config": {}, "model": {"w": torch.zeros(1)}, "evil": Payload(marker)}
    if form == "dict":
        path.write_bytes(_torch_bytes({"w": torch.zeros(1), "evil": Payload(marker)}))
    elif form == "model":  # a "whole saved model"
        path.write_bytes(_torch_bytes(Payload(marker)))
    elif form == "suite-v1":  # the format-1 outer layout, valid header and checksum, the payload in the blob
        blob = _torch_bytes(state)
        path.write_bytes(_torch_bytes({"format": FORMAT_V1, "sha256": hashlib.sha256(blob).hexdigest(),
                                       "meta": {"kind": "density", "step": 0, "epoch": 0}, "blob": blob}))
    elif form == "suite-v2":  # the current layout, valid header and checksum, the payload in the blob
        blob = _torch_bytes(state)
        header = json.dumps({"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                             "meta": {"kind": "density", "step": 0, "epoch": 0}})
        path.write_bytes(MAGIC + header.encode() + b"\n" + blob)
    else:
        raise ValueError(form)
    return path


FORMS = ["dict", "model", "suite-v1", "suite-v2"]


def _resume(main, tiny):
    """The payload as ``checkpoint.pt`` in the run folder a trainer resumes from."""
    def paths(tmp_path, ckpt):
        out = tmp_path / "run"
        out.mkdir()
        shutil.move(str(ckpt), out / "checkpoint.pt")
        return main, [*tiny, "--out", str(out)]
    return paths


PATHS = {
    "density_oe.score --ckpt": lambda t, c: (score.main, ["--ckpt", str(c), "--dataset", "gaussian,size=8,n=4",
                                                           "--out", str(t / "s.npy"), "--device", "cpu"]),
    "density_oe.sample --ckpt": lambda t, c: (sample.main, ["--ckpt", str(c), "--out", str(t / "s.png"),
                                                             "--device", "cpu"]),
    "density_oe.train --init": lambda t, c: (pcnn_train.main, [*TINY_PCNN, "--mode", "oe_tune", "--init", str(c),
                                                               "--outliers", "mini-outliers",
                                                               "--out", str(t / "r")]),
    "classifiers_oe.train --init": lambda t, c: (cls_train.main, [*TINY_CLS, "--mode", "oe_tune", "--init", str(c),
                                                                  "--outliers", "mini-outliers",
                                                                  "--out", str(t / "r")]),
    "density_oe.train resume": _resume(pcnn_train.main, TINY_PCNN),
    "classifiers_oe.train resume": _resume(cls_train.main, TINY_CLS),
    "analysis.evaluate --ckpt": lambda t, c: (evaluate_main, ["--ckpt", f"clf={c}", "--id-dataset",
                                                               "gaussian,size=8,n=8", "--ood", "blobs,size=8,n=8",
                                                               "--device", "cpu", "--out", str(t / "ev")]),
    "analysis.evaluate --ckpt :arch": lambda t, c: (evaluate_main, ["--ckpt", f"clf={c}:arch=wrn,depth=10,widen=1",
                                                                     "--id-dataset", "gaussian,size=8,n=8",
                                                                     "--ood", "blobs,size=8,n=8", "--device", "cpu",
                                                                     "--out", str(t / "ev")]),
    "analysis.evaluate --background": lambda t, c: (evaluate_main, ["--ckpt", f"clf={classifier_ckpt(t / 'clf')[0]}",
                                                                     "--background", str(c), "--detectors",
                                                                     "likelihood_ratio", "--id-dataset",
                                                                     "gaussian,size=8,n=8", "--ood",
                                                                     "blobs,size=8,n=8", "--device", "cpu",
                                                                     "--out", str(t / "ev")]),
    "density_oe.port --src": lambda t, c: (port.main, ["--src", str(c), "--out", str(t / "ported")]),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("path", list(PATHS))
def test_payload_never_runs_and_is_one_line(tmp_path, capsys, path, form):
    marker = tmp_path / "PAYLOAD_RAN"
    ckpt = write_payload(tmp_path / "shared" / "checkpoint.pt", form, marker)
    main, argv = PATHS[path](tmp_path, ckpt)
    rc = cli_main(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists(), f"the payload ran through {path}"
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    refusals = ("pickled Python objects", "not an OE-suite checkpoint", "holds a dict, not a state dict",
                "already an OE-suite checkpoint")
    assert any(r in err[0] for r in refusals), err


def test_the_payload_is_live(tmp_path):
    """The fixture itself: an unsafe load runs it (so the tests above would see it run)."""
    marker = tmp_path / "PAYLOAD_RAN"
    torch.load(write_payload(tmp_path / "p.pt", "model", marker), weights_only=False)
    assert marker.is_dir()


@pytest.mark.parametrize("form", ["suite-v1", "suite-v2"])
def test_suite_layout_with_a_payload_is_unsafe_not_corrupt(tmp_path, form):
    marker = tmp_path / "PAYLOAD_RAN"
    with pytest.raises(UnsafeFileError, match="holds pickled Python objects"):
        load_checkpoint(write_payload(tmp_path / "c.pt", form, marker))
    assert not marker.exists()


def test_resume_never_falls_back_over_a_payload(tmp_path, capsys):
    """A payload as checkpoint.pt beside a good checkpoint.prev.pt stops the run instead of being skipped."""
    out = tmp_path / "run"
    assert cli_main(cls_train.main, [*TINY_CLS, "--epochs", "1", "--out", str(out)]) == 0
    os.replace(out / "checkpoint.pt", out / "checkpoint.prev.pt")
    marker = tmp_path / "PAYLOAD_RAN"
    write_payload(out / "checkpoint.pt", "suite-v2", marker)
    capsys.readouterr()
    assert cli_main(cls_train.main, [*TINY_CLS, "--epochs", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds pickled Python objects" in err and not marker.exists()


def test_regenerate_refuses_a_payload_in_place_of_the_recorded_checkpoint(tmp_path, capsys):
    """analysis.regenerate recomputes a damaged cache entry from the checkpoint results.json names."""
    ckpt, _ = classifier_ckpt(tmp_path / "clf")
    ev = tmp_path / "ev"
    assert cli_main(evaluate_main, ["--ckpt", f"clf={tmp_path / 'clf'}", "--id-dataset", "toy-shapes,size=8,n=20",
                                    "--ood", "gaussian,size=8,n=10", "--num-to-avg", "2", "--device", "cpu",
                                    "--out", str(ev)]) == 0
    for entry in (ev / "score_cache").rglob("gaussian*.npz"):
        entry.write_bytes(b"")  # damaged: regenerate must recompute it from the checkpoint
    marker = tmp_path / "PAYLOAD_RAN"
    write_payload(ckpt, "suite-v2", marker)
    capsys.readouterr()
    rc = cli_main(regenerate_main, [str(ev)])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("warning: ")]
    assert rc == 2 and len(err) == 1 and "holds pickled Python objects" in err[0], err
    assert not marker.exists()


def test_whole_model_loads_only_with_trust_pickle(tmp_path, capsys):
    from classifiers_oe.models import build_model
    net = build_model("wrn", 4, depth=10, widen_factor=1, dropout=0.0)
    torch.save(net, tmp_path / "whole.pt")
    argv = ["--ckpt", f"clf={tmp_path / 'whole.pt'}", "--id-dataset", "toy-shapes,size=8,n=20", "--ood",
            "gaussian,size=8,n=10", "--num-to-avg", "2", "--device", "cpu", "--out", str(tmp_path / "ev")]
    assert cli_main(evaluate_main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch.save(model.state_dict()" in err[0] and "--trust-pickle" in err[0], err
    assert cli_main(evaluate_main, [*argv, "--trust-pickle"]) == 0


def test_trust_pickle_help_states_the_risk():
    r = subprocess.run([sys.executable, "-m", "analysis.evaluate", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    text = " ".join(r.stdout.split())
    assert "--trust-pickle" in text and "runs code from the file" in text


def test_cli_refusal_has_no_traceback(tmp_path):
    """Through the real entry point: exit 2, one line, and the payload did not run."""
    marker = tmp_path / "PAYLOAD_RAN"
    ckpt = write_payload(tmp_path / "c.pt", "suite-v1", marker)
    r = subprocess.run([sys.executable, "-m", "density_oe.score", "--ckpt", str(ckpt), "--dataset",
                        "gaussian,size=8,n=4", "--out", str(tmp_path / "s.npy"), "--device", "cpu"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(err) == 1 and "holds pickled Python objects" in err[0], err
    assert not marker.exists()


def test_saved_checkpoints_load_with_weights_only(tmp_path):
    """A trainer's own checkpoint (model, optimizer, scheduler, RNG states, config) is plain data."""
    out = tmp_path / "run"
    assert cli_main(cls_train.main, [*TINY_CLS, "--out", str(out)]) == 0
    raw = (out / "checkpoint.pt").read_bytes()
    assert raw.startswith(MAGIC)
    blob = raw[raw.index(b"\n", len(MAGIC)) + 1:]
    state = torch.load(io.BytesIO(blob), weights_only=True)
    assert state["kind"] == "classifier" and isinstance(state["rng"]["numpy"][1], list)


def test_saving_refuses_objects_that_could_not_load_safely(tmp_path):
    from oe_core.run import save_checkpoint
    with pytest.raises(TypeError, match=r"state\['task'\]\['ema'\] is a .*Payload"):
        save_checkpoint(tmp_path, {"kind": "x", "task": {"ema": Payload(tmp_path / "m")}}, kind="x", step=0, epoch=0)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_format_1_checkpoints_still_load_and_resume(tmp_path):
    """A run stopped after epoch 1 with a format-1 checkpoint (numpy RNG state inside) resumes safely, to the
    same weights as the uninterrupted run, and its next checkpoint is format 2."""
    import numpy as np
    out = tmp_path / "run"
    argv = [*TINY_CLS, "--epochs", "2", "--out", str(out)]
    argv.pop(TINY_CLS.index("--epochs") + 1)
    argv.pop(TINY_CLS.index("--epochs"))
    assert cli_main(cls_train.main, argv) == 0
    final = load_checkpoint(out / "checkpoint.pt")["model"]
    state = load_checkpoint(out / "checkpoint.prev.pt")
    assert state["position"]["epoch"] == 1
    meta = state.pop("meta")
    for k in ("sha256", "path"):
        state.pop(k)
    name, keys, pos, has_gauss, cached = state["rng"]["numpy"]
    state["rng"]["numpy"] = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)  # as format 1 held it
    blob = _torch_bytes(state)
    (out / "checkpoint.prev.pt").unlink()
    (out / "checkpoint.pt").write_bytes(_torch_bytes({"format": FORMAT_V1, "sha256": hashlib.sha256(blob).hexdigest(),
                                                      "meta": meta, "blob": blob}))
    old = load_checkpoint(out / "checkpoint.pt")
    assert old["kind"] == "classifier" and old["sha256"] == hashlib.sha256(blob).hexdigest()
    assert cli_main(cls_train.main, argv) == 0
    resumed = load_checkpoint(out / "checkpoint.pt")
    assert resumed["position"]["epoch"] == 2 and (out / "checkpoint.pt").read_bytes().startswith(MAGIC)
    for k, v in final.items():
        assert torch.equal(v, resumed["model"][k]), k


def test_checkpoint_format_reads_headers_only(tmp_path, monkeypatch):
    """Which files are suite checkpoints, told without torch.load (a weights file's tensors are not read) and
    without running a payload."""
    def no_load(*a, **k):
        raise AssertionError("checkpoint_format must not torch.load the file")

    weights = tmp_path / "weights.pt"
    weights.write_bytes(_torch_bytes({"w": torch.zeros(3)}))
    monkeypatch.setattr(torch, "load", no_load)
    marker = tmp_path / "ran"
    assert checkpoint_format(write_payload(tmp_path / "v1.pt", "suite-v1", marker)) == 1
    assert checkpoint_format(write_payload(tmp_path / "v2.pt", "suite-v2", marker)) == 2
    assert checkpoint_format(write_payload(tmp_path / "d.pt", "dict", marker)) is None
    assert checkpoint_format(weights) is None
    assert not marker.exists()


def test_a_corrupt_checkpoint_is_still_corrupt_not_unsafe(tmp_path):
    out = tmp_path / "run"
    assert cli_main(cls_train.main, [*TINY_CLS, "--out", str(out)]) == 0
    ck = out / "checkpoint.pt"
    data = bytearray(ck.read_bytes())
    data[-100] ^= 0xFF
    ck.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_checkpoint(ck)
