"""Importing pclucas14/pixel-cnn-pp checkpoints: a DataParallel state dict in the port's layout loads strictly and
gives the same eval outputs; broken files are one clear error; the CLI writes a suite checkpoint."""
from __future__ import annotations

import torch
import pytest

from tests.plain_pixelcnn import PlainPixelCNN
from density_oe import port
from density_oe.pixelcnn.model import PixelCNNConfig
from density_oe.weights import load_density_model
from oe_core.errors import CheckpointError, cli_main
from oe_core.run import load_checkpoint


def port_file(tmp_path, nr_resnet=2, nr_filters=8, nr_mix=3):
    """A plain model (the port's parameter layout) with random gains, saved as the port saves: the state dict of
    ``nn.DataParallel(model)``, every key prefixed with ``module.``."""
    torch.manual_seed(0)
    plain = PlainPixelCNN(nr_resnet, nr_filters, nr_mix).eval()
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.rand_like(p) + 0.5)
    state = {f"module.{k}": v for k, v in plain.state_dict().items()}
    assert any(".deconv.weight_g" in k for k in state) and any(".lin_a.weight_v" in k for k in state)
    path = tmp_path / "pcnn_lr.0.00040_nr-resnet2_nr-filters8_9.pth"
    torch.save(state, path)
    return path, plain


def test_port_checkpoint_loads_strictly_and_matches_in_eval_mode(tmp_path):
    path, plain = port_file(tmp_path)
    model = port.load_port_checkpoint(path)
    assert model.cfg == PixelCNNConfig(nr_resnet=2, nr_filters=8, nr_logistic_mix=3, dropout=0.5)
    model.eval()
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-6)


def test_transposed_convs_are_renormalised_per_output_channel(tmp_path):
    """The port's deconv gains are per input channel; the imported layer has one gain per output channel and the
    same effective weight."""
    path, plain = port_file(tmp_path)
    model = port.load_port_checkpoint(path)
    assert plain.upsize_u_stream[0].deconv.weight_g.shape == (8, 1, 1, 1)
    layer = model.upsize_u_stream[0]
    assert layer.weight_g.shape == (8,)
    plain(torch.zeros(1, 3, 8, 8))                   # the hook computes ``.weight`` from g and v on a forward
    torch.testing.assert_close(layer.weight(), plain.upsize_u_stream[0].deconv.weight)
    norms = torch.linalg.vector_norm(layer.weight(), dim=(0, 2, 3))
    torch.testing.assert_close(norms, layer.weight_g.detach())


def test_broken_port_files_are_one_clear_error(tmp_path):
    path, plain = port_file(tmp_path)
    state = torch.load(path, weights_only=True)
    missing = dict(state)
    del missing["module.nin_out.lin_a.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="missing: nin_out.bias"):
        port.load_port_checkpoint(tmp_path / "missing.pth")
    extra = dict(state, **{"module.extra.conv.weight_v": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected: extra.weight_v"):
        port.load_port_checkpoint(tmp_path / "extra.pth")
    mixed = {k.removeprefix("module.") if "nin_out" in k else k: v for k, v in state.items()}
    torch.save(mixed, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="mixes keys"):
        port.load_port_checkpoint(tmp_path / "mixed.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read"):
        port.load_port_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        port.load_port_checkpoint(tmp_path / "nothing.pth")


def test_port_cli_writes_a_suite_checkpoint_that_loads_like_a_run(tmp_path, capsys):
    path, plain = port_file(tmp_path)
    out = tmp_path / "imported"
    assert cli_main(port.main, ["--src", str(path), "--out", str(out)]) == 0
    state = load_checkpoint(out, expect_kind="density")
    assert state["config"]["nr_filters"] == 8 and state["config"]["nr_resnet"] == 2
    model, cfg = load_density_model(out)
    direct, _ = load_density_model(path)              # a .pth is accepted directly too
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(direct(x), model(x))
    assert cli_main(port.main, ["--out", str(out)]) == 2
    assert "--src" in capsys.readouterr().err
