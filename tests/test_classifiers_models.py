"""The classifiers load state dicts with the OE reference's key layout and compute its forward pass.

The expected keys/shapes and the forward passes below are written out independently
of classifiers_oe.models, from the reference's CIFAR/models/{wrn,allconv}.py.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from classifiers_oe.models import build_model
from oe_core.errors import ConfigError

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn_keys(prefix: str, c: int) -> dict[str, tuple]:
    return {f"{prefix}.{k}": (() if k == "num_batches_tracked" else (c,)) for k in BN}


# WRN-10-2, 5 classes: one block per stage; every first block changes width (16->32, 32->64, 64->128).
WRN_10_2_KEYS: dict[str, tuple] = {
    "conv1.weight": (16, 3, 3, 3),
    **bn_keys("block1.layer.0.bn1", 16), "block1.layer.0.conv1.weight": (32, 16, 3, 3),
    **bn_keys("block1.layer.0.bn2", 32), "block1.layer.0.conv2.weight": (32, 32, 3, 3),
    "block1.layer.0.convShortcut.weight": (32, 16, 1, 1),
    **bn_keys("block2.layer.0.bn1", 32), "block2.layer.0.conv1.weight": (64, 32, 3, 3),
    **bn_keys("block2.layer.0.bn2", 64), "block2.layer.0.conv2.weight": (64, 64, 3, 3),
    "block2.layer.0.convShortcut.weight": (64, 32, 1, 1),
    **bn_keys("block3.layer.0.bn1", 64), "block3.layer.0.conv1.weight": (128, 64, 3, 3),
    **bn_keys("block3.layer.0.bn2", 128), "block3.layer.0.conv2.weight": (128, 128, 3, 3),
    "block3.layer.0.convShortcut.weight": (128, 64, 1, 1),
    **bn_keys("bn1", 128), "fc.weight": (5, 128), "fc.bias": (5,),
}


def wrn_keys(depth: int, k: int, classes: int) -> dict[str, tuple]:
    """The reference's WRN key layout written out by its rules (for any depth/width)."""
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    keys = {"conv1.weight": (16, 3, 3, 3)}
    for s in range(3):
        cin, cout = widths[s], widths[s + 1]
        for i in range(n):
            p = f"block{s + 1}.layer.{i}"
            c0 = cin if i == 0 else cout
            keys.update(bn_keys(f"{p}.bn1", c0))
            keys[f"{p}.conv1.weight"] = (cout, c0, 3, 3)
            keys.update(bn_keys(f"{p}.bn2", cout))
            keys[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            if c0 != cout:
                keys[f"{p}.convShortcut.weight"] = (cout, c0, 1, 1)
    keys.update(bn_keys("bn1", widths[3]))
    keys.update({"fc.weight": (classes, widths[3]), "fc.bias": (classes,)})
    return keys


def conv_bn(idx: int, cin: int, cout: int, k: int) -> dict[str, tuple]:
    return {f"features.{idx}.weight": (cout, cin, k, k), f"features.{idx}.bias": (cout,),
            **bn_keys(f"features.{idx + 1}", cout)}


# AllConv: features = 3x(conv,bn,gelu) | maxpool, dropout | 3x(conv,bn,gelu) | maxpool, dropout |
# nopad (conv,bn,gelu) | 2x NIN (conv,bn,gelu) | avgpool; then classifier.
ALLCONV_KEYS: dict[str, tuple] = {
    **conv_bn(0, 3, 96, 3), **conv_bn(3, 96, 96, 3), **conv_bn(6, 96, 96, 3),
    **conv_bn(11, 96, 192, 3), **conv_bn(14, 192, 192, 3), **conv_bn(17, 192, 192, 3),
    **conv_bn(22, 192, 192, 3), **conv_bn(25, 192, 192, 1), **conv_bn(28, 192, 192, 1),
    "classifier.weight": (10, 192), "classifier.bias": (10,),
}


def random_state(keys: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in keys.items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            sd[name] = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
        elif name.endswith("weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[name] = torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(2.0 / fan_in)
        else:
            sd[name] = torch.randn(shape, generator=g, dtype=torch.float64) * 0.3
    return sd


def f_bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def wrn_forward(x, sd, depth):
    """The reference WRN's eval-mode forward, functional."""
    n = (depth - 4) // 6
    out = F.conv2d(x, sd["conv1.weight"], padding=1)
    for s in range(3):
        for i in range(n):
            p = f"block{s + 1}.layer.{i}"
            stride = 2 if (s > 0 and i == 0) else 1
            act = F.relu(f_bn(out, sd, f"{p}.bn1"))
            h = F.relu(f_bn(F.conv2d(act, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn2"))
            h = F.conv2d(h, sd[f"{p}.conv2.weight"], padding=1)
            sc = f"{p}.convShortcut.weight"
            out = (F.conv2d(act, sd[sc], stride=stride) if sc in sd else out) + h
    out = F.relu(f_bn(out, sd, "bn1"))
    out = F.avg_pool2d(out, 8).flatten(1)
    return F.linear(out, sd["fc.weight"], sd["fc.bias"])


def allconv_forward(x, sd):
    """The reference AllConv's eval-mode forward, functional (GELU ~ x*sigmoid(1.702x))."""
    def block(h, idx, pad):
        h = F.conv2d(h, sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"], padding=pad)
        h = f_bn(h, sd, f"features.{idx + 1}")
        return h * torch.sigmoid(1.702 * h)
    h = x
    for idx in (0, 3, 6):
        h = block(h, idx, 1)
    h = F.max_pool2d(h, 2)
    for idx in (11, 14, 17):
        h = block(h, idx, 1)
    h = F.max_pool2d(h, 2)
    h = block(h, 22, 0)
    h = block(block(h, 25, 1), 28, 1)
    h = F.avg_pool2d(h, 8).flatten(1)
    return F.linear(h, sd["classifier.weight"], sd["classifier.bias"])


def shapes(model) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_wrn_10_2_reference_state_dict_loads_strict_and_matches_forward():
    model = build_model("wrn", 5, depth=10, widen_factor=2, dropout=0.3).double()
    assert shapes(model) == WRN_10_2_KEYS
    sd = random_state(WRN_10_2_KEYS, seed=0)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(model(x), wrn_forward(x, sd, 10), rtol=1e-10, atol=1e-10)


def test_wrn_16_1_identity_shortcuts_carry_the_raw_input():
    # widen 1: block1's first block keeps 16 channels (no convShortcut); depth 16: two blocks per stage.
    keys = wrn_keys(16, 1, 3)
    assert "block1.layer.0.convShortcut.weight" not in keys and "block2.layer.1.conv2.weight" in keys
    model = build_model("wrn", 3, depth=16, widen_factor=1).double()
    assert shapes(model) == keys
    sd = random_state(keys, seed=2)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(model(x), wrn_forward(x, sd, 16), rtol=1e-10, atol=1e-10)


def test_wrn_40_2_has_the_reference_layout():
    model = build_model("wrn", 10)
    assert shapes(model) == wrn_keys(40, 2, 10)
    n_params = sum(p.numel() for p in model.parameters())
    assert 2.2e6 < n_params < 2.3e6  # WRN-40-2 is the 2.2M-parameter network of the paper
    assert model.block1.layer[0].drop_rate == 0.3


def test_allconv_reference_state_dict_loads_strict_and_matches_forward():
    model = build_model("allconv", 10).double()
    assert shapes(model) == ALLCONV_KEYS
    sd = random_state(ALLCONV_KEYS, seed=4)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(model(x), allconv_forward(x, sd), rtol=1e-9, atol=1e-9)


def test_wrn_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    model = build_model("wrn", 4, depth=10, widen_factor=1, dropout=0.5)
    x = torch.randn(2, 3, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_wrn_without_norm_has_no_batchnorm_state():
    model = build_model("wrn", 4, depth=10, widen_factor=1, norm="none")
    assert not any("bn" in k for k in model.state_dict())
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="resnet", num_classes=10), "unknown architecture"),
    (dict(arch="wrn", num_classes=10, depth=12), "6n\\+4"),
    (dict(arch="wrn", num_classes=10, widen_factor=0), "widen"),
    (dict(arch="wrn", num_classes=1), "at least 2 classes"),
    (dict(arch="wrn", num_classes=10, norm="layer"), "norm"),
])
def test_bad_model_options_raise_one_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_model(**kwargs)
