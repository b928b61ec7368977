"""``torch.compile`` really compiles: PixelCNN++ forward + DMOL loss (and Glow) trace as one graph with no breaks,
and the compiled loss and gradients equal eager ones (same dropout masks under ``aot_eager``: the compiled path calls
``native_dropout``, as the eager kernel does on CUDA; Inductor would substitute its own generator unless
``fallback_random``).  ``aot_eager`` keeps these tests fast (an Inductor compile of the tiny model took 9 min
on the shared 2-core CPU, so Inductor itself is exercised by ``scripts/gpu_check.sh`` on a GPU, not here)."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from density_oe.pixelcnn import dmol
from density_oe.glow import Glow, GlowConfig
from density_oe.losses import oe_density_loss
from density_oe.units import bits_per_dim
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.train import main
from oe_core.run.checkpoint import load_checkpoint
from oe_core.run.engine import compile_with_fallback
from tests.test_density_dmol import random_case
from tests.test_density_train import BASELINE

TINY = PixelCNNConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=2)


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
    bpd = bits_per_dim(dmol.log_prob(model(x), x), x[0].numel())
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


@pytest.fixture
def native_dropout_masks(monkeypatch):
    """The eager kernel with the masks the compiled path draws (``native_dropout``, as on CUDA): CPUs otherwise use
    their random-bit masks, which the compiled path does not reproduce."""
    from density_oe.pixelcnn import activations
    monkeypatch.setattr(activations, "RANDOM_BITS_DEVICE_TYPES", frozenset())


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_compiled_loss_and_gradients_equal_eager_with_dropout(fmt, native_dropout_masks):
    model, x = _pixelcnn(fmt)
    eager = _loss_and_grads(model, _oe_loss, x)
    compiled = _loss_and_grads(model, torch.compile(_oe_loss, backend="aot_eager", fullgraph=True), x)
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-5)
    for name, g in eager[1].items():
        torch.testing.assert_close(compiled[1][name], g, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")



def test_a_failed_compile_warns_once_and_runs_eagerly(monkeypatch):
    def broken(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C++ compiler found")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    double = compile_with_fallback(lambda t: t * 2)
    with pytest.warns(UserWarning, match="torch.compile failed .*running eagerly") as seen:
        assert double(torch.ones(2)).tolist() == [2.0, 2.0]
        assert double(torch.ones(2)).tolist() == [2.0, 2.0]
    assert len(seen) == 1


def test_the_trainer_with_compile_trains_as_eager(tmp_path, monkeypatch, native_dropout_masks):
    """``--compile`` in the density trainer: the network (engine) and the likelihood (task) compiled, here with
    the aot_eager backend (Inductor takes minutes on this CPU): the same losses and weights as eager."""
    args = [*BASELINE, "--epochs", "1", "--limit-steps", "3"]
    assert main(args + ["--out", str(tmp_path / "eager")]) == 0
    real = torch.compile
    calls = []

    def aot_eager(fn, **kwargs):
        calls.append(fn)
        return real(fn, backend="aot_eager")
    monkeypatch.setattr(torch, "compile", aot_eager)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(args + ["--out", str(tmp_path / "compiled"), "--compile"]) == 0
    assert not [w for w in seen if "torch.compile failed" in str(w.message)]     # no fallback to eager
    assert len(calls) == 2                                   # the network and the likelihood
    rows = [json.loads((tmp_path / run / "metrics.json").read_text())[-1] for run in ("eager", "compiled")]
    for key in ("train_loss", "train_bpd", "test_bpd"):
        assert rows[1][key] == pytest.approx(rows[0][key], rel=1e-4), key
    states = [load_checkpoint(tmp_path / run, expect_kind="density")["model"] for run in ("eager", "compiled")]
    for name, value in states[0].items():   # (Adam turns float32-level gradient differences into up to lr-sized
        # moves for near-zero gradients: 3 steps at lr 3e-3 bound what may differ; such elements are rare -- on
        # mini benchmark v2 data 1 of 384 of one tensor moved 5e-4 -- so: all within that bound, >= 99% close)
        other = states[1][name].float()
        diff = (other - value.float()).abs()
        assert float(diff.max()) <= 3 * 3e-3 + 1e-6, name
        far = diff > 1e-4 + 1e-3 * value.float().abs()
        assert float(far.float().mean()) <= 0.01, f"{name}: {int(far.sum())} of {far.numel()} elements differ"
