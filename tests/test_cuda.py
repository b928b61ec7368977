"""CUDA: the same numbers as on the CPU (float32 with TF32 off), bf16 scoring within 0.01 bits/dim, and the port
running as written.  Marked ``cuda`` (``pytest -m cuda`` selects them; ``scripts/gpu_check.sh`` runs them) and
skipped, with the reason, where torch sees no CUDA GPU."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from benchmarks.pixelcnn_cases import uint8_loader
from benchmarks.port import build_port_model, load_port, resolve_port_dir
from classifiers_oe.models import build_model
from density_oe.pixelcnn import dmol
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.port import load_port_state_dict
from density_oe.scorer import score_dataset
from oe_core.errors import ConfigError
from tests.test_density_bf16 import smooth_images, trained_model

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (torch.cuda.is_available() is "
                                                                       "False)")]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("channels_last", [False, True])
def test_pixelcnn_outputs_and_gradients_match_the_cpu(channels_last):
    torch.manual_seed(0)
    model = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=16, nr_logistic_mix=3)).eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    losses, grads = [], []
    for device in (torch.device("cpu"), CUDA):
        # a fresh copy per device (Module.to moves parameters and their .grad in place, so a CPU gradient kept as
        # a reference would move to the GPU with the model), and gradients copied to the CPU (.cpu() of a CPU
        # tensor is that same tensor)
        m = copy.deepcopy(model).to(device, memory_format=fmt)
        xd = x.to(device).contiguous(memory_format=fmt)
        loss = -dmol.log_prob(m(xd), xd).sum()
        loss.backward()
        losses.append(loss.item())
        grads.append({name: p.grad.detach().to("cpu", copy=True) for name, p in m.named_parameters()})
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert grads[1].keys() == grads[0].keys()
    for name, reference in grads[0].items():
        torch.testing.assert_close(grads[1][name], reference, rtol=1e-3, atol=1e-3, msg=lambda m: f"{name}: {m}")


def test_bf16_scoring_on_cuda_is_within_a_hundredth_of_a_bit_of_float32():
    images = smooth_images(48)
    model = trained_model(images[:32]).to(CUDA)
    fp32 = score_dataset(model, uint8_loader(images, 16), CUDA, "none")
    bf16 = score_dataset(model, uint8_loader(images, 16), CUDA, "bf16")
    assert np.abs(bf16 - fp32).max() <= 0.01


def test_wrn_bf16_channels_last_train_step_is_finite():
    torch.manual_seed(0)
    model = build_model("wrn", 10, depth=16, widen_factor=2, dropout=0.3).to(CUDA, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(8, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,), device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_port_runs_on_cuda_as_written_and_equals_density_oe():
    try:
        resolve_port_dir()
    except ConfigError as e:
        pytest.skip(str(e))
    port = load_port(drop_cuda=False)
    torch.manual_seed(0)
    port_net = build_port_model(port, 1, 8, 3).to(CUDA).eval()
    ours = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=3))
    load_port_state_dict(ours, port_net.state_dict())
    ours = ours.to(CUDA).eval()
    x = torch.rand(2, 3, 8, 8, device=CUDA) * 2 - 1
    with torch.no_grad():
        out = port_net(x)
        torch.testing.assert_close(ours(x), out, rtol=1e-4, atol=1e-5)
        assert port.loss(x, out).item() == pytest.approx(-dmol.log_prob(out, x).sum().item(), rel=1e-5)
