"""density_oe.glow.coupling against the formula of its docstring (openai's model.py), with the coupling network's
output fixed: which half is passed through, which channels of h shift and which scale, the +2 offset."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from density_oe.glow.coupling import Coupling


class Fixed(nn.Module):
    """A stand-in coupling network whose output ``h`` is given (and that records its input)."""

    def __init__(self, h: torch.Tensor):
        super().__init__()
        self.h, self.seen = h, None

    def forward(self, z1):
        self.seen = z1
        return self.h


def setup(kind: str, channels: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, 3, 3, generator=g)
    layer = Coupling(channels, 5, kind)
    h = torch.randn(2, channels if kind == "affine" else channels // 2, 3, 3, generator=g) * 2
    layer.net = Fixed(h)
    return layer, x, h


def test_affine_coupling_is_the_openai_formula():
    layer, x, h = setup("affine")
    y, logdet = layer(x, torch.full((2,), 0.5))
    z1, z2 = x[:, :2], x[:, 2:]
    assert torch.equal(layer.net.seen, z1)                       # the first half parametrises the second
    shift, scale = h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0)
    torch.testing.assert_close(y, torch.cat([z1, (z2 + shift) * scale], 1), rtol=0, atol=1e-6)
    torch.testing.assert_close(logdet, 0.5 + torch.log(scale).flatten(1).sum(1), rtol=1e-6, atol=1e-5)
    back, logdet0 = layer.reverse(y, logdet)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-5)
    torch.testing.assert_close(logdet0, torch.full((2,), 0.5), rtol=0, atol=1e-5)


def test_at_initialisation_the_affine_coupling_scales_by_sigmoid_2():
    layer = Coupling(4, 5, "affine")            # Conv2dZeros: the network outputs zeros
    x = torch.randn(2, 4, 3, 3)
    y, logdet = layer(x, torch.zeros(2))
    torch.testing.assert_close(y, torch.cat([x[:, :2], x[:, 2:] * torch.sigmoid(torch.tensor(2.0))], 1))
    torch.testing.assert_close(logdet, torch.full((2,), 2 * 3 * 3 * F.logsigmoid(torch.tensor(2.0)).item()))


def test_additive_coupling_shifts_and_keeps_the_log_det():
    layer, x, h = setup("additive")
    y, logdet = layer(x, torch.full((2,), 0.5))
    assert torch.equal(y, torch.cat([x[:, :2], x[:, 2:] + h], 1)) and torch.equal(logdet, torch.full((2,), 0.5))
    back, logdet0 = layer.reverse(y, logdet)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-6)
    assert torch.equal(logdet0, logdet)
    assert Coupling(4, 5, "additive").net.out.conv.weight.shape[0] == 2     # the network outputs half the channels
    assert Coupling(4, 5, "affine").net.out.conv.weight.shape[0] == 4       # shift and scale for each


def test_defaults_and_bias_free_convolutions_before_actnorm():
    layer = Coupling(4, 5)
    assert layer.kind == "affine" and layer.net.out.conv.weight.shape[0] == 4
    assert layer.net.conv1.bias is None and layer.net.conv2.bias is None   # actnorm supplies the bias (openai)


def test_under_bf16_autocast_the_flow_stays_float32():
    layer, x, h = setup("affine")
    layer.net.h = h.bfloat16()                      # what the network gives under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, logdet = layer(x, torch.zeros(2))
    assert y.dtype == torch.float32 and logdet.dtype == torch.float32
    hf = layer.net.h.float()                        # from here on in float32, not in bfloat16
    scale = torch.sigmoid(hf[:, 1::2] + 2.0)
    torch.testing.assert_close(y[:, 2:], (x[:, 2:] + hf[:, 0::2]) * scale, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logdet, F.logsigmoid(hf[:, 1::2] + 2.0).flatten(1).sum(1), rtol=1e-6, atol=1e-5)
