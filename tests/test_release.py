"""Weights anyone can load: every finished run folder (both trainers, the port importer) holds ``model.safetensors``
(its scoring weights) and a model card whose code rebuilds the model with plain PyTorch, safetensors and the model
class; every tool that takes weights accepts the ``.safetensors`` file; ``analysis.export`` writes them for existing
runs."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from analysis import export
from analysis.load_model import ClassifierModel, DensityModel, load_model
from classifiers_oe import train as clf_train
from classifiers_oe.inputs import model_input
from classifiers_oe.weights import load_classifier
from density_oe import port
from density_oe import train as density_train
from density_oe.archs import ARCHS, get_arch
from density_oe.config import DensityConfig
from density_oe.weights import load_density_model
from oe_core.cli_config import config_to_dict, parse_config
from oe_core.errors import CheckpointKindError, cli_main
from oe_core.run import load_checkpoint
from tests.test_density_port import port_file

ROOT = Path(__file__).resolve().parents[1]
CLF = ["--dataset", "toy-shapes", "--image-size", "8", "--depth", "10", "--widen-factor", "1", "--batch-size", "16",
       "--num-workers", "0", "--no-progress", "--device", "cpu", "--epochs", "1", "--limit-steps", "2"]
DENSITY = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "8", "--nr-logistic-mix",
           "2", "--num-workers", "0", "--no-progress", "--device", "cpu", "--eval-images", "16", "--test-batch-size",
           "16", "--batch-size", "4", "--epochs", "1", "--limit-steps", "3", "--ema-decay", "0.8"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    assert clf_train.main(CLF + ["--out", str(base / "clf")]) == 0
    assert density_train.main(DENSITY + ["--out", str(base / "pcnn")]) == 0
    return base


def card_code(folder: Path) -> str:
    """The Python block of the folder's model card."""
    blocks = re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    return blocks[0]


def run_card(folder: Path, tail: str) -> None:
    """Run the card's code, then ``tail``, in a fresh interpreter in ``folder`` (the suite importable only for the
    model class), and check the code imports nothing from the suite but the model class."""
    code = card_code(folder)
    suite_imports = [ln for ln in code.splitlines() if ln.startswith(("from ", "import "))
                     and ln.split()[1].split(".")[0] in {"oe_core", "classifiers_oe", "density_oe", "analysis"}]
    assert len(suite_imports) == 1 and re.fullmatch(r"from [\w.]+ import (WideResNet|PixelCNNpp)", suite_imports[0])
    proc = subprocess.run([sys.executable, "-c", code + tail], cwd=folder, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_a_finished_classifier_run_has_its_weights_and_a_card_that_plain_pytorch_loads(runs, tmp_path):
    folder = runs / "clf"
    weights = load_file(folder / "model.safetensors")
    state = load_checkpoint(folder)
    assert weights.keys() == state["model"].keys()
    for k, v in state["model"].items():
        assert torch.equal(weights[k], v), k
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["kind"] == "classifier" and meta["weights"] == "model"
    assert json.loads(meta["config"]) == json.loads((folder / "config.json").read_text())
    card = (folder / "README.md").read_text()
    for part in ("WRN-10-1", "`toy-shapes`", "test_error", "config.json", "cross-entropy from scratch"):
        assert part in card
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    torch.save(x, tmp_path / "x.pt")
    run_card(folder, f"\nimport torch\nx = torch.load({str(tmp_path / 'x.pt')!r})\n"
                     "mean = torch.tensor([125.3, 123.0, 113.9]).view(1, 3, 1, 1) / 255\n"
                     "std = torch.tensor([63.0, 62.1, 66.7]).view(1, 3, 1, 1) / 255\n"
                     f"torch.save(model((x / 255 - mean) / std), {str(tmp_path / 'y.pt')!r})\n")
    suite, _ = load_classifier(folder)
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), suite(model_input(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_density_run_releases_its_ema_weights_and_plain_pytorch_gets_the_same_likelihoods(runs, tmp_path):
    folder = runs / "pcnn"
    weights = load_file(folder / "model.safetensors")
    state = load_checkpoint(folder)
    assert all(torch.equal(weights[k], v) for k, v in state["eval_model"].items())       # the EMA ...
    assert any(not torch.equal(weights[k], v) for k, v in state["model"].items())         # ... not the trained ones
    assert "EMA 0.8" in (folder / "README.md").read_text()
    size = [int(s) for s in state["task"]["image_size"]]          # the trained size travels in the metadata
    assert len(size) == 2 and load_checkpoint(folder / "model.safetensors")["task"] == {"image_size": size}
    x = torch.randint(0, 256, (3, 3, 8, 8)).float() / 127.5 - 1
    torch.save(x, tmp_path / "x.pt")
    run_card(folder, f"\nimport torch\nx = torch.load({str(tmp_path / 'x.pt')!r})\n"
                     f"torch.save(model.log_prob(x), {str(tmp_path / 'y.pt')!r})\n")
    suite, _ = load_density_model(folder, weights="eval")
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "y.pt"), suite.log_prob(x), rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_every_loader_takes_the_safetensors_file(runs, tmp_path):
    clf, pcnn = runs / "clf" / "model.safetensors", runs / "pcnn" / "model.safetensors"
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    from_ckpt = load_model(runs / "clf", "a", torch.device("cpu"))
    from_weights = load_model(clf, "b", torch.device("cpu"))              # analysis.evaluate --ckpt
    assert isinstance(from_weights, ClassifierModel)
    torch.testing.assert_close(from_weights.logits(x), from_ckpt.logits(x))
    released = tmp_path / "released"                                       # config + weights + card, no checkpoint
    released.mkdir()
    for name in ("config.json", "model.safetensors", "README.md"):
        shutil.copy(runs / "pcnn" / name, released / name)
    density = load_model(released, "p", torch.device("cpu"))
    assert isinstance(density, DensityModel) and isinstance(load_model(pcnn, "q", torch.device("cpu")), DensityModel)
    model, _ = load_density_model(pcnn)                                    # density_oe.score / sample --ckpt
    assert model.trained_size == (8, 8)
    torch.testing.assert_close(density.log_prob(x), DensityModel(model).log_prob(x))
    with pytest.raises(CheckpointKindError, match="holds a classifier model, but a density model"):
        load_density_model(clf)
    # --init of both trainers
    assert clf_train.main(CLF + ["--out", str(tmp_path / "tune"), "--mode", "oe_tune", "--init", str(clf),
                                 "--outliers", "gaussian", "--oe-batch-size", "16"]) == 0
    assert density_train.main(DENSITY + ["--out", str(tmp_path / "dtune"), "--mode", "oe_tune", "--init",
                                         str(pcnn), "--outliers", "gaussian", "--oe-batch-size", "4"]) == 0
    assert (tmp_path / "dtune" / "model.safetensors").is_file()
    # a user's own plain state dict in safetensors, architecture inferred from its keys
    mine = tmp_path / "mine.safetensors"
    save_file(load_file(clf), mine)
    torch.testing.assert_close(load_model(mine, "m", torch.device("cpu")).logits(x), from_ckpt.logits(x))


def test_export_writes_the_same_files_for_an_existing_run(runs, tmp_path, capsys):
    folder = tmp_path / "old"
    shutil.copytree(runs / "clf", folder)
    def contents(path):
        with safe_open(str(path), "pt") as f:
            return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}

    meta, tensors = contents(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    (folder / "README.md").unlink()
    assert cli_main(export.main, [str(folder)]) == 0
    meta_now, tensors_now = contents(folder / "model.safetensors")   # (safetensors orders its header freely)
    assert meta_now == meta and tensors_now.keys() == tensors.keys()
    assert all(torch.equal(tensors_now[k], v) for k, v in tensors.items())
    assert (folder / "README.md").read_text() == (runs / "clf" / "README.md").read_text()
    assert cli_main(export.main, [str(folder / "model.safetensors")]) == 2
    assert "already a safetensors file" in capsys.readouterr().err
    assert cli_main(export.main, [str(tmp_path / "nothing")]) == 2


def test_the_port_importer_writes_loadable_weights(tmp_path):
    path, plain = port_file(tmp_path)
    out = tmp_path / "imported"
    assert cli_main(port.main, ["--src", str(path), "--out", str(out)]) == 0
    assert "pclucas14/pixel-cnn-pp" in (out / "README.md").read_text()
    model, _ = load_density_model(out / "model.safetensors")
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form", ["dict", "suite-v2"])
def test_export_never_runs_a_payload(tmp_path, capsys, form):
    from tests.test_security import write_payload

    marker = tmp_path / "PAYLOAD_RAN"
    write_payload(tmp_path / "run" / "checkpoint.pt", form, marker)
    assert cli_main(export.main, [str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists() and len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("name", sorted(ARCHS.names()))
def test_every_density_family_rebuilds_from_a_run_config(name):
    """The model card's code builds the network with ``from_config(config.json)``: every family has it."""
    cfg = parse_config(DensityConfig, ["--arch", name])
    arch = get_arch(name)
    built = arch.build.from_config(json.loads(json.dumps(config_to_dict(cfg))))
    expected = arch.build(cfg.model_config)
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in expected.state_dict().items()}


def test_a_safetensors_file_loads_with_the_sha256_of_all_its_bytes(tmp_path):
    """The state a ``model.safetensors`` loads as carries the file's sha256, read in 1 MiB chunks: a file of
    several chunks hashes whole."""
    import hashlib

    from oe_core.run.release import ModelCard, write_release
    state = {"kind": "classifier", "config": {"arch": "wrn"}, "model": {"w": torch.arange(600_000.0)},
             "eval_model": None, "task": {}}
    path = write_release(tmp_path, state, ModelCard("t", "s", {}))
    assert path.stat().st_size > 2 << 20
    assert load_checkpoint(path)["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
