"""``torch.compile`` really compiles: PixelCNN++ forward + DMOL loss (and Glow) trace as one graph with no breaks,
and the compiled loss and gradients equal eager ones (same dropout masks: the compiled path draws the same random
bits as the eager kernel).  ``aot_eager`` keeps these tests fast (an Inductor compile of the tiny model took 9 min
on the shared 2-core CPU, so Inductor itself is exercised by ``scripts/gpu_check.sh`` on a GPU, not here)."""
from __future__ import annotations

import pytest
import torch

from density_oe import dmol
from density_oe.glow import Glow, GlowConfig
from density_oe.losses import oe_density_loss
from density_oe.model import ModelConfig, PixelCNNpp
from tests.test_density_dmol import random_case

TINY = ModelConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=2)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _pixelcnn(fmt=torch.contiguous_format) -> tuple[PixelCNNpp, torch.Tensor]:
    torch.manual_seed(0)
    model = PixelCNNpp(TINY).train().to(memory_format=fmt)
    x = (torch.randint(0, 256, (4, 3, 8, 8)).float() / 127.5 - 1.0).contiguous(memory_format=fmt)
    return model, x


def _oe_loss(model, x):
    bpd = dmol.nll_bpd(model(x), x)
    return oe_density_loss(bpd[:2], bpd[2:], 1.0, 1.0)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_pixelcnn_forward_and_dmol_loss_are_one_graph_without_breaks(fmt):
    model, x = _pixelcnn(fmt)
    explained = torch._dynamo.explain(_oe_loss)(model, x)
    reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), reasons


def test_glow_log_likelihood_is_one_graph_without_breaks():
    torch.manual_seed(0)
    model = Glow(GlowConfig(glow_levels=2, glow_steps=2, glow_hidden=8)).train()
    x = torch.randint(0, 256, (2, 3, 8, 8)).float() / 127.5 - 1.0
    explained = torch._dynamo.explain(lambda m, t: m(t).mean())(model, x)
    reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), reasons


def test_traced_likelihood_equals_the_kernel_in_all_branches():
    """The compile path (:func:`dmol._log_prob_traced`, autograd's backward) against the eager kernel (its own
    analytic backward), float64, on pixels in all four branches: values and gradients to rounding."""
    params, x = random_case(0, 200, 3, 2, 2)
    params = params.double()
    x = x.double()
    upstream = torch.rand(200, dtype=torch.float64)
    grads = []
    for fn in (lambda p: dmol._DMOLLogProb.apply(p, x, 3), lambda p: dmol._log_prob_traced(p, x, 3)):
        p = params.clone().requires_grad_(True)
        value = fn(p)
        (value * upstream).sum().backward()
        grads.append((value.detach(), p.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-9, atol=1e-9)


def _loss_and_grads(model, fn, x):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)                       # the same dropout bits for eager and compiled
    loss = fn(model, x)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_compiled_loss_and_gradients_equal_eager_with_dropout(fmt):
    model, x = _pixelcnn(fmt)
    eager = _loss_and_grads(model, _oe_loss, x)
    compiled = _loss_and_grads(model, torch.compile(_oe_loss, backend="aot_eager", fullgraph=True), x)
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-5)
    for name, g in eager[1].items():
        torch.testing.assert_close(compiled[1][name], g, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")

