"""The pclucas14/pixel-cnn-pp port loaded at run time: the two in-memory patches, no leaked modules, one clear error
when it is missing, and density_oe equal to the port's own model and loss on the same weights."""
from __future__ import annotations

import sys

import pytest
import torch

from benchmarks.port import build_port_model, load_port, patch_source, port_or_skip_reason, resolve_port_dir
from benchmarks.run import main
from density_oe.pixelcnn import dmol
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.port import load_port_state_dict
from oe_core.errors import ConfigError, cli_main
from tests.test_density_model import randomise_gains_and_biases

PORT, WHY = port_or_skip_reason()
needs_port = pytest.mark.skipif(PORT is None, reason=f"pclucas14 port not available: {WHY}")


def test_patch_source_applies_the_two_cpu_patches_only():
    text = "try:\n    x = y.cuda()\nexcept Exception as e:\n    print e\nprint ever\n"
    patched, counts = patch_source(text)
    assert patched == "try:\n    x = y\nexcept Exception as e:\n    print(e)\nprint ever\n"
    assert counts == {"print e": 1, ".cuda()": 1}
    kept, counts = patch_source(text, drop_cuda=False)
    assert "y.cuda()" in kept and "print(e)" in kept and counts[".cuda()"] == 0


def test_missing_port_dir_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "utils.py").write_text("")
    with pytest.raises(ConfigError, match="missing layers.py, model.py"):
        resolve_port_dir(str(tmp_path))
    assert cli_main(main, ["--quick", "--cases", "dmol_loss", "--port-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pclucas14/pixel-cnn-pp port is not at --port-dir" in err[0]


@needs_port
def test_port_loads_without_leaking_its_flat_module_names():
    before = {name: sys.modules.get(name) for name in ("utils", "layers", "model")}
    port = load_port()
    assert {name: sys.modules.get(name) for name in before} == before
    assert not any(getattr(m, "__name__", "").startswith("pclucas14_port") for m in sys.modules.values())
    assert port.patches["utils"]["print e"] == 1 and port.patches["utils"][".cuda()"] > 0
    assert port.utils.__file__.startswith(str(resolve_port_dir()))


@needs_port
def test_density_oe_equals_the_port_model_and_loss_on_the_same_weights():
    """The port's own model (eval mode: its Dropout2d off) and its summed DMOL loss against density_oe, with the
    port's weights converted by density_oe.port (randomised gains and biases, so every weight-norm path matters)."""
    torch.manual_seed(0)
    port_net = randomise_gains_and_biases(build_port_model(PORT, nr_resnet=1, nr_filters=8, nr_logistic_mix=3)).eval()
    ours = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=3)).eval()
    load_port_state_dict(ours, port_net.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (3, 3, 8, 8), generator=g).float() / 127.5 - 1.0
    with torch.no_grad():
        port_out, our_out = port_net(x), ours(x)
        torch.testing.assert_close(our_out, port_out, rtol=1e-4, atol=1e-5)
        port_loss = PORT.loss(x, port_out)
        our_loss = -dmol.log_prob(port_out, x).sum()
    torch.testing.assert_close(our_loss, port_loss, rtol=1e-5, atol=1e-2)


def test_profile_buckets_and_bounds():
    """The op buckets and the bound arithmetic of ``benchmarks.profile`` (what docs/performance.md quotes)."""
    from benchmarks.profile import bounds, category
    assert category("aten::mkldnn_convolution") == category("aten::convolution_backward") == "convolutions"
    assert category("aten::bmm") == category("aten::addmm") == "matrix products"
    assert category("aten::elu") == category("aten::_fused_adam_") == "everything else"
    suite = {"convolutions": 2.0, "matrix products": 0.5, "everything else": 1.5, "total": 4.0}
    port = {"convolutions": 2.0, "matrix products": 0.5, "everything else": 3.5, "total": 6.0}
    b = bounds(suite, port, target=2.0)
    assert b["ratio"] == pytest.approx(1.5) and b["bound"] == pytest.approx(2.4)
    assert b["rest_now"] == 1.5 and b["rest_allowed"] == pytest.approx(0.5)    # 6 / 2 - 2.5


@needs_port
def test_profile_finds_each_kind_of_work_in_both_codes():
    """Each bucket catches ops of both codes: the suite's 1x1 layers are bmm/baddbmm, the port's mm/addmm; an op
    name the buckets missed would leave a bucket empty."""
    from benchmarks.profile import CATEGORIES, ProfileConfig, profile_both
    suite, port, label = profile_both(ProfileConfig(quick=True, steps=1))
    assert label.startswith("F=")
    for seconds in (suite, port):
        assert all(seconds[c] > 0 for c in CATEGORIES), seconds


@needs_port
def test_profile_cli_prints_the_table_and_the_target_of_the_case(capsys):
    from benchmarks import profile
    assert profile.main(["--quick", "--steps", "1", "--amp", "bf16"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and " s (" in line]
    assert rows == ["convolutions", "matrix products", "everything else", "total"]
    assert "the suite in bf16 autocast" in out and "target 2.0x" in out        # the small-config bf16 target
