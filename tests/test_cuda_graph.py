"""Whole-step CUDA graphs (:mod:`oe_core.run.cuda_graph`), the device-independent part: when they are used, the
warm-up / capture / replay bookkeeping, the one-warning fallback, the learning rate as a tensor, the split EMA
update, and a density training run through the graph path (with :class:`ReplayByCalling` standing in for the GPU)
that ends with the weights of the eager run.  The capture itself runs in ``scripts/gpu_check.sh`` on a GPU."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from density_oe.ema import EMA
from density_oe.train import main
from oe_core.run import cuda_graph
from oe_core.run.cuda_graph import ReplayByCalling, StepGraph, TensorLR, resolve_cuda_graphs
from oe_core.run.checkpoint import load_checkpoint
from tests.test_density_train import BASELINE

CPU = torch.device("cpu")


def test_auto_uses_graphs_on_cuda_only_and_on_warns_once_where_it_cannot():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_cuda_graphs("auto", torch.device("cuda", 0)) is True
        assert resolve_cuda_graphs("auto", CPU) is False                     # silently eager
        assert resolve_cuda_graphs("auto", torch.device("cuda", 0), "not under DDP") is False
        assert resolve_cuda_graphs("off", torch.device("cuda", 0)) is False
    with pytest.warns(UserWarning, match="not used .*need a CUDA device") as seen:
        assert resolve_cuda_graphs("on", CPU) is False
    assert len(seen) == 1
    with pytest.raises(ValueError):
        resolve_cuda_graphs("yes", CPU)


class Counter:
    def __init__(self):
        self.calls = 0
        self.total = torch.zeros(())

    def __call__(self, x):
        self.calls += 1
        self.total += x.sum()
        return x * 2, {"sum": x.sum()}


def test_step_graph_warms_up_captures_once_and_replays_on_static_buffers():
    fn = Counter()
    g = StepGraph(fn, CPU, warmup=2, backend=ReplayByCalling)
    outs = [g(torch.full((3,), float(i))) for i in range(5)]
    assert g.captured and g.graph.captures == 1 and g.graph.replays == 2     # calls 1-2 eager, 3 capture, 4-5 replay
    assert fn.calls == 5 and float(fn.total) == 3 * sum(range(5))          # every call did its work once
    assert outs[-1] is outs[-2] and outs[-1][0].tolist() == [8.0] * 3       # static outputs, overwritten
    assert float(outs[-1][1]["sum"]) == 12.0
    other = g(torch.ones(2))                                                 # another shape: eager, not the graph
    assert other[0].tolist() == [2.0, 2.0] and g.graph.replays == 2


class FailingCapture(ReplayByCalling):
    def capture(self, fn):
        raise RuntimeError("operation not permitted when stream is capturing")


def test_a_failed_capture_warns_once_and_runs_eagerly_from_then_on():
    fn = Counter()
    g = StepGraph(fn, CPU, warmup=1, name="train step", backend=FailingCapture)
    with pytest.warns(UserWarning, match="CUDA graph capture of the train step failed .*running it eagerly") as seen:
        outs = [g(torch.ones(2)) for _ in range(4)]
    assert len(seen) == 1 and not g.captured and fn.calls == 4
    assert all(o[0].tolist() == [2.0, 2.0] for o in outs)


def _fit(lr_as_tensor: bool, steps: int = 20) -> tuple[list[float], torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, betas=(0.95, 0.9995), fused=True)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
    lrs = TensorLR(opt, CPU) if lr_as_tensor else None
    x, y = torch.randn(16, 5), torch.randn(16, 1)
    seen = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        if lrs is not None:
            lrs.sync()
            seen.append(float(lrs.tensors[0]))
            with lrs.for_step():
                assert isinstance(opt.param_groups[0]["lr"], torch.Tensor) and opt.param_groups[0]["capturable"]
                opt.step()
            assert isinstance(opt.param_groups[0]["lr"], float) and not opt.param_groups[0]["capturable"]
        else:
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
        sched.step()
    return seen, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_tensor_learning_rate_follows_the_float_schedule():
    floats, w_float = _fit(False)
    tensors, w_tensor = _fit(True)
    assert floats[-1] == pytest.approx(0.1 * 0.8 ** 19)
    assert tensors == pytest.approx(floats, rel=1e-7)                        # float32 rounding of the same values
    torch.testing.assert_close(w_tensor, w_float, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("debias", [False, True])
def test_the_split_ema_update_equals_the_eager_one(debias):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    eager, split = EMA(model, 0.9, debias), EMA(model, 0.9, debias)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        eager.update(model)
        split.advance()
        split.apply(model)
    assert eager.updates == split.updates == 5
    for a, b in zip(eager.model.parameters(), split.model.parameters()):
        torch.testing.assert_close(b, a)


def assert_graph_path_ends_with_the_eager_weights(args: list[str], tmp_path, monkeypatch,
                                                 parts=("model", "eval_model")) -> int:
    """Train ``args`` (density_oe.train options without --out) eagerly and through the graph path (the CPU stand-in
    that replays by calling): the same losses, learning rates, test bpd and weights.  Returns the replays."""
    assert main(args + ["--out", str(tmp_path / "eager"), "--cuda-graphs", "off"]) == 0
    made = []

    class Recorded(ReplayByCalling):
        def __init__(self, device):
            super().__init__(device)
            made.append(self)

    monkeypatch.setitem(cuda_graph.BACKENDS, "cpu", Recorded)
    assert main(args + ["--out", str(tmp_path / "graph"), "--cuda-graphs", "on"]) == 0
    assert len(made) == 1 and made[0].captures == 1
    rows = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("eager", "graph")]
    for a, b in zip(*rows):
        for key in ("train_loss", "train_bpd", "test_bpd", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
    states = [load_checkpoint(tmp_path / run, expect_kind="density") for run in ("eager", "graph")]
    for part in parts:
        for name, value in states[0][part].items():
            torch.testing.assert_close(states[1][part][name], value, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, name=name: f"{name} {m}")
    return made[0].replays


def test_a_density_run_through_the_graph_path_ends_with_the_eager_weights(tmp_path, monkeypatch):
    """Forward, loss, backward, fused Adam with the tensor LR and the EMA update as one captured function, replayed
    on static batch buffers (the CPU stand-in): same losses, weights and EMA as the eager engine."""
    args = [a for a in BASELINE] + ["--epochs", "2", "--limit-steps", "6"]
    replays = assert_graph_path_ends_with_the_eager_weights(args, tmp_path, monkeypatch)
    assert replays == 12 - 4                                           # 3 warm-up steps, 1 capture


def test_glow_keeps_its_fixed_evaluation_draw_on_the_device_with_the_same_values():
    """Glow's scoring batch is capturable: the fixed dequantisation draw is made once per image shape (not copied
    from the host at every call) and is the same draw as before (seeded CPU generator)."""
    from density_oe.glow import Glow, GlowConfig
    from density_oe.glow.model import EVAL_NOISE_SEED
    torch.manual_seed(0)
    model = Glow(GlowConfig(glow_levels=2, glow_steps=2, glow_hidden=8)).eval()
    for side in (8, 16):
        x = torch.randint(0, 256, (3, 3, side, side)).float() / 127.5 - 1
        draw = torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(EVAL_NOISE_SEED)).expand_as(x)
        with torch.inference_mode():
            first = model(x)
        kept = model._eval_noise_cache[1]
        assert torch.equal(model(x), first) and torch.equal(model(x, draw), first)
        assert model._eval_noise_cache[1] is kept and not kept.is_inference()
