"""PixelCNN++: causality, batch-size independence, equality with the plain (port-style) model on the same weights,
weight-norm caching, data-dependent init, size of the paper model."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from tests.plain_pixelcnn import PlainPixelCNN, discretized_mix_logistic_log_prob
from density_oe.pixelcnn import dmol
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.port import load_port_state_dict
from density_oe.pixelcnn.weight_norm import data_dependent_init, frozen_weights
from oe_core.errors import OEError

TINY = PixelCNNConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=2, dropout=0.5)


@torch.no_grad()
def randomise_gains_and_biases(net: torch.nn.Module) -> torch.nn.Module:
    """Weight-norm gains scaled by U(0.5, 1.5) and biases drawn from N(0, 0.1), so every weight-norm path matters
    (a fresh layer has ``g = ||v||``)."""
    for name, p in net.named_parameters():
        if name.endswith("weight_g"):
            p.mul_(torch.rand_like(p) + 0.5)
        elif name.endswith("bias"):
            p.normal_(0, 0.1)
    return net


def tiny_pair(seed: int = 0, cfg: PixelCNNConfig = TINY) -> tuple[PixelCNNpp, PlainPixelCNN]:
    """A plain model with randomised gains (so every weight-norm path matters) and the fast model loaded from it."""
    torch.manual_seed(seed)
    plain = randomise_gains_and_biases(PlainPixelCNN(cfg.nr_resnet, cfg.nr_filters, cfg.nr_logistic_mix, cfg.dropout))
    fast = PixelCNNpp(cfg)
    load_port_state_dict(fast, plain.state_dict())
    return fast.eval(), plain.eval()


def images(b: int, h: int = 8, w: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=g).float() / 127.5 - 1.0


@pytest.mark.parametrize("pos", [(0, 0), (0, 5), (3, 0), (4, 4), (7, 7)])
def test_outputs_depend_only_on_earlier_pixels(pos):
    """d output(i, j) / d input(i', j') is exactly zero for (i', j') at or after (i, j) in raster order (all three
    colour channels of the pixel itself included) and not zero for some earlier pixels."""
    model, _ = tiny_pair()
    x = images(1).requires_grad_(True)
    i, j = pos
    model(x)[0, :, i, j].square().sum().backward()
    g = x.grad[0].abs().sum(0)                                           # (H, W)
    order = torch.arange(64).view(8, 8)
    later = order >= i * 8 + j
    assert g[later].max() == 0.0
    if (i, j) != (0, 0):
        assert g[~later].max() > 0.0


def test_any_batch_size_in_any_call():
    model, _ = tiny_pair()
    x = images(5)
    full = model(x)
    torch.testing.assert_close(model(x[:2]), full[:2])
    torch.testing.assert_close(model(x[2:]), full[2:])


def _param_map(plain: PlainPixelCNN, fast: PixelCNNpp) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(plain param, fast param) pairs with the same parametrisation (every layer but the transposed convs)."""
    own = dict(fast.named_parameters())
    pairs = []
    for name, p in plain.named_parameters():
        if ".deconv." in name:
            continue
        pairs.append((p, own[re.sub(r"\.(conv|lin_a)\.", ".", name)]))
    return pairs


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_model_equals_the_plain_model_on_the_same_weights(channels_last):
    """Outputs, per-image log-likelihoods and gradients (input and parameters) agree to float32 rounding."""
    fast, plain = tiny_pair(3, PixelCNNConfig(nr_resnet=2, nr_filters=12, nr_logistic_mix=3, dropout=0.5))
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    x = images(3, 8, 12)
    xf, xp = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_f, out_p = fast(xf), plain(xp)
    torch.testing.assert_close(out_f, out_p, rtol=1e-5, atol=1e-5)
    ll_f, ll_p = dmol.log_prob(out_f, x), discretized_mix_logistic_log_prob(x, out_p)
    torch.testing.assert_close(ll_f, ll_p, rtol=1e-5, atol=1e-3)
    w = torch.tensor([0.3, -1.0, 2.0])
    (ll_f * w).sum().backward()
    (ll_p * w).sum().backward()
    torch.testing.assert_close(xf.grad, xp.grad, rtol=1e-4, atol=1e-4 * float(xp.grad.abs().max()))
    for p_plain, p_fast in _param_map(plain, fast):
        torch.testing.assert_close(p_fast.grad.reshape(p_plain.shape), p_plain.grad, rtol=1e-4,
                                   atol=1e-4 * float(p_plain.grad.abs().max()) + 1e-6)


def test_training_mode_uses_elementwise_dropout_at_the_configured_rate():
    model, _ = tiny_pair()
    model.train()
    torch.manual_seed(0)
    a = model(images(2))
    torch.manual_seed(1)
    b = model(images(2))
    assert not torch.allclose(a, b)
    torch.manual_seed(0)
    torch.testing.assert_close(model(images(2)), a)
    from density_oe.pixelcnn.activations import dropout_mask
    torch.manual_seed(0)
    m = dropout_mask(torch.empty(200, 100, 10, 10), 0.3)
    values = torch.unique(m).tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(1 / 0.7)]
    assert float((m == 0).float().mean()) == pytest.approx(0.3, abs=0.005)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_one_bit_dropout_mask_at_the_paper_rate(dtype, layout):
    """p = 0.5 takes one random bit per element: values 0 and 2, half dropped, neighbours independent (each bit of
    a random byte used once), laid out like the tensor it masks, reproducible under the seed."""
    from density_oe.pixelcnn.activations import dropout_mask
    like = torch.empty(50, 40, 10, 10, dtype=dtype).contiguous(memory_format=layout)
    torch.manual_seed(0)
    m = dropout_mask(like, 0.5)
    assert m.dtype == dtype and m.shape == like.shape and m.stride() == like.stride()
    assert torch.unique(m).tolist() == [0.0, 2.0]
    kept = (m.permute(0, 2, 3, 1) if layout == torch.channels_last else m).reshape(-1).double() / 2
    assert float(kept.mean()) == pytest.approx(0.5, abs=0.005)
    for lag in (1, 2, 7, 8):        # the bits of one byte, and of neighbouring bytes, are independent
        c = float(((kept[lag:] - 0.5) * (kept[:-lag] - 0.5)).mean()) * 4
        assert abs(c) < 0.01, (lag, c)
    torch.manual_seed(0)
    assert torch.equal(dropout_mask(like, 0.5), m)


def test_cropped_rows_give_the_same_outputs_as_the_full_image():
    """What the sampler relies on: outputs of the first r rows (r a multiple of 4) do not depend on later rows."""
    model, _ = tiny_pair()
    x = images(2, 12, 8)
    full = model(x)
    for rows in (4, 8):
        torch.testing.assert_close(model(x[:, :, :rows]), full[:, :, :rows])


def test_frozen_weights_reuse_the_normalised_weights_and_are_released():
    model, _ = tiny_pair()
    x = images(2)
    ref = model(x)
    with frozen_weights(model):
        torch.testing.assert_close(model(x), ref)
        with torch.no_grad():
            model.nin_out.weight_g.mul_(2.0)       # frozen: the change is not seen
        torch.testing.assert_close(model(x), ref)
    assert not torch.allclose(model(x), ref)     # released: it is


def test_data_dependent_init_normalises_pre_activations():
    """After the init pass the first layer's outputs on the init batch have zero mean and unit variance per
    channel, and the first resnet's gate convolution (init_scale 0.1) starts at std 0.1."""
    torch.manual_seed(0)
    model = PixelCNNpp(TINY)
    x = images(16)
    data_dependent_init(model, x)
    seen = {}
    model.u_init.register_forward_hook(lambda m, i, o: seen.setdefault("u_init", o))
    block = model.up_layers[0].u_stream[0]
    block.conv_input.register_forward_hook(lambda m, i, o: seen.setdefault("conv_input", o))
    model.eval()
    with torch.no_grad():
        model(x)
    for name in ("u_init", "conv_input"):
        out = seen[name].transpose(0, 1).flatten(1)
        torch.testing.assert_close(out.mean(1), torch.zeros(len(out)), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.var(1, unbiased=False), torch.ones(len(out)), atol=1e-4, rtol=0)
    assert block.conv_out.init_scale == 0.1 and model.training is False


def test_paper_model_has_the_size_of_the_released_checkpoints():
    """5 resnets, 160 filters, 10 mixtures: the port's 214,732,802-byte .pth holds ~53.7M float32 values (plus a
    little pickle overhead); both layouts have the same number of parameters."""
    with torch.device("meta"):
        fast = sum(p.numel() for p in PixelCNNpp(PixelCNNConfig()).parameters())
        plain = sum(p.numel() for p in PlainPixelCNN().parameters())
    assert fast == plain
    assert 0 < 214_732_802 - 4 * fast < 200_000


def test_bad_input_shapes_are_one_clear_error():
    model, _ = tiny_pair()
    with pytest.raises(OEError, match="multiples of 4"):
        model(torch.zeros(1, 3, 6, 8))
    with pytest.raises(OEError, match="\\(B, 3, H, W\\)"):
        model(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("pad", [(0, 0, 0, 0), (1, 1, 1, 0), (1, 0, 1, 0)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_concat_elu_equals_the_composite_ops_torch_compile_traces(monkeypatch, pad, channels_last):
    """The eager kernel (exp-only ELU, fused padding and dropout) against elu(cat([x, -x])) on a padded x, in
    value and gradient; dropout masks keep or zero whole elements and scale by 1/(1-p)."""
    from density_oe.pixelcnn import activations
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 5, 6, 4, generator=g) * 3).requires_grad_(True)
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    up = torch.randn(2, 10, 6 + pad[2] + pad[3], 4 + pad[0] + pad[1], generator=g)
    fast = activations.concat_elu(xin, pad=pad)
    (gx_fast,) = torch.autograd.grad((fast * up).sum(), x)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    ref = activations.concat_elu(x, pad=pad)
    (gx_ref,) = torch.autograd.grad((ref * up).sum(), x)
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gx_fast, gx_ref, rtol=1e-6, atol=1e-6)
    monkeypatch.undo()
    torch.manual_seed(3)
    dropped = activations.concat_elu(xin, 0.5, True, pad)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], 2 * fast.detach()[kept])
    assert 0.3 < float(kept[fast != 0].float().mean()) < 0.7
    for p in (0.5, 0.3):             # the gradient through the dropout: the composite ops times the same mask
        torch.manual_seed(4)
        dropped = activations.concat_elu(xin, p, True, pad)
        (gx_drop,) = torch.autograd.grad((dropped * up).sum(), x)
        torch.manual_seed(4)
        mask = activations.dropout_mask(fast.detach(), p)
        torch.testing.assert_close(dropped, fast * mask, rtol=1e-6, atol=1e-7)
        composite = F.elu(torch.cat([F.pad(x, pad), -F.pad(x, pad)], dim=1))
        (gx_ref,) = torch.autograd.grad((composite * mask * up).sum(), x)
        torch.testing.assert_close(gx_drop, gx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pad", [(0, 0, 0, 0), (1, 1, 1, 0)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_native_dropout_kernel_equals_the_composite_ops_compile_traces(monkeypatch, pad, channels_last):
    """Where the eager kernel drops with ``native_dropout`` (CUDA; here the CPU with ``RANDOM_BITS_DEVICE_TYPES``
    emptied): value and gradient equal the composite ops ``torch.compile`` traces (``elu(cat)``, then
    ``native_dropout``) under the same seed -- the masks a compiled step draws with ``fallback_random`` -- the
    output is laid out like the input, and the keep rate is ``1 - p``."""
    from density_oe.pixelcnn import activations
    monkeypatch.setattr(activations, "RANDOM_BITS_DEVICE_TYPES", frozenset())
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 6, 8, 8, generator=g) * 3).requires_grad_(True)
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    up = torch.randn(4, 12, 8 + pad[2] + pad[3], 8 + pad[0] + pad[1], generator=g)
    for p in (0.5, 0.3):
        torch.manual_seed(5)
        native = activations.concat_elu(xin, p, True, pad)
        (gx,) = torch.autograd.grad((native * up).sum(), x)
        with monkeypatch.context() as m:
            m.setattr(torch.compiler, "is_compiling", lambda: True)
            torch.manual_seed(5)
            ref = activations.concat_elu(xin, p, True, pad)
            (gx_ref,) = torch.autograd.grad((ref * up).sum(), x)
        torch.testing.assert_close(native, ref, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-6, atol=1e-6)
        assert native.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        nonzero = activations.concat_elu(xin.detach(), pad=pad) != 0
        kept = float((native.detach()[nonzero] != 0).float().mean())
        assert kept == pytest.approx(1 - p, abs=0.06)


def test_the_cpu_kernel_keeps_its_random_bit_masks():
    """CPUs keep the measured-faster random-bit masks (eager CPU runs bit-identical to before native_dropout came
    in for CUDA): the dropped output is the ELU times ``dropout_mask`` drawn from the same seed."""
    from density_oe.pixelcnn import activations
    assert activations.RANDOM_BITS_DEVICE_TYPES == {"cpu"}
    x = torch.randn(2, 5, 6, 4, generator=torch.Generator().manual_seed(1))
    plain = activations.concat_elu(x)
    torch.manual_seed(7)
    dropped = activations.concat_elu(x, 0.5, True)
    torch.manual_seed(7)
    assert torch.equal(dropped, plain * activations.dropout_mask(plain, 0.5))


def test_bf16_autocast_runs_the_network_in_bf16_and_the_likelihood_in_fp32():
    model, _ = tiny_pair()
    x = images(2)
    ref = model(x)
    body = {}

    def record(module, args, out):
        body["dtype"] = out[0].dtype

    hook = model.up_layers[0].register_forward_hook(record)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        ll = dmol.log_prob(out, x)
    hook.remove()
    # the body in bf16; the head, and so the DMOL parameters the likelihood reads, in float32
    assert body["dtype"] == torch.bfloat16 and out.dtype == torch.float32 and ll.dtype == torch.float32
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    ll.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
