"""Whole-step CUDA graphs (:mod:`oe_core.run.cuda_graph`), the device-independent part: when they are used, the
warm-up / capture / replay bookkeeping, host batches copied once into the static buffers, the one-warning fallback
(also for a capture that fails *during* capture), :class:`CudaGraph` itself against a fake ``torch.cuda`` that
fails as torch 2.14's does (a pin-memory thread during a global-mode capture; ``capture_end`` raising before the
stream is restored), the learning rate as a tensor, the split and fused EMA updates, and a density training run
through the graph path (with :class:`ReplayByCalling` standing in for the GPU) that ends with the weights of the
eager run.  The capture itself runs in ``scripts/gpu_check.sh`` on a GPU."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

import inspect
import threading

from density_oe import ema as ema_module
from density_oe.ema import EMA, fused_lerp_
from density_oe.train import main
from oe_core.run import cuda_graph
from oe_core.run.cuda_graph import CudaGraph, StepGraph, TensorLR, resolve_cuda_graphs
from oe_core.run.checkpoint import load_checkpoint
from tests.replay_by_calling import ReplayByCalling
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
    assert g.status == "captured" and g.graph.captures == 1 and g.graph.replays == 2     # calls 1-2 eager, 3 capture, 4-5 replay
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
    assert len(seen) == 1 and g.status != "captured" and fn.calls == 4
    assert all(o[0].tolist() == [2.0, 2.0] for o in outs)


class FailsDuringCapture(ReplayByCalling):
    """A capture that begins, runs part of the step, and then fails (as an op that cannot be captured does)."""

    def capture(self, fn):
        self.captures += 1
        fn()
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


def test_a_capture_that_fails_during_capture_falls_back_for_that_step_and_after():
    fn = Counter()
    g = StepGraph(fn, CPU, warmup=2, name="train step", backend=FailsDuringCapture)
    with pytest.warns(UserWarning, match="capture of the train step failed .*not permitted when stream is capturing"):
        outs = [g(torch.full((2,), float(i))) for i in range(5)]
    assert g.status.startswith("eager: RuntimeError") and g._runner is None
    assert fn.calls == 2 + 1 + 1 + 2                     # warm-up, the failed capture, its eager step, 2 eager
    assert [o[0].tolist() for o in outs] == [[2.0 * i] * 2 for i in range(5)]
    assert g.static_in is None and g.static_out is None   # nothing of the failed capture kept


def test_replays_copy_the_host_batch_straight_into_the_static_buffers(monkeypatch):
    """After capture, a call copies each input tensor once into its static buffer: no transfer to a temporary
    device tensor first (eager calls -- warm-up, another shape -- do move their inputs)."""
    moved = []
    real = StepGraph._on_device
    monkeypatch.setattr(StepGraph, "_on_device", lambda self, inputs: moved.append(len(inputs)) or real(self, inputs))
    seen = []
    g = StepGraph(lambda x: seen.append(x) or x * 2, CPU, warmup=1, backend=ReplayByCalling)
    host = [torch.full((3,), float(i)) for i in range(4)]
    outs = [g(h) for h in host]
    assert moved == [1]                                  # the warm-up call only
    static = g.static_in[0]
    assert all(x is static for x in seen[1:]) and not any(x is h for x in seen[1:] for h in host)
    assert static.tolist() == [3.0] * 3 and outs[-1].tolist() == [6.0] * 3
    g(torch.ones(5))                                     # another shape: eager, moved
    assert moved == [1, 1] and static.tolist() == [3.0] * 3


class FakeCuda:
    """What :class:`CudaGraph` uses of ``torch.cuda``, behaving as torch 2.14's (``torch/cuda/graphs.py``):
    ``graph.__exit__`` calls ``capture_end()`` and only then leaves its stream context, ``capture_end`` raises on an
    invalidated capture, and in ``"global"`` capture mode a CUDA call from another thread (the DataLoader's
    pin-memory thread allocating pinned memory) invalidates the capture and fails in that thread."""

    def __init__(self):
        self.current, self.mode, self.invalidated = "default", None, False
        self.resets, self.thread_errors, self.replays = 0, [], 0
        fake = self

        class Stream:
            def __init__(self, device=None):
                self.name = "side"

            def wait_stream(self, other):
                pass

        class CUDAGraph:
            def capture_begin(self, capture_error_mode):
                fake.mode, fake.invalidated = capture_error_mode, False

            def capture_end(self):
                mode, fake.mode = fake.mode, None
                if fake.invalidated:
                    raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

            def replay(self):
                fake.replays += 1

            def reset(self):
                fake.resets += 1

        class stream:                            # torch.cuda.StreamContext: exit restores the stream it found
            def __init__(self, s):
                self.s = s

            def __enter__(self):
                self.before, fake.current = fake.current, self.s.name

            def __exit__(self, *exc):
                fake.current = self.before

        class graph:
            def __init__(self, cuda_graph, pool=None, stream=None, capture_error_mode="global"):
                self.g, self.mode, self.ctx = cuda_graph, capture_error_mode, fake.stream(stream)

            def __enter__(self):
                self.ctx.__enter__()
                self.g.capture_begin(capture_error_mode=self.mode)

            def __exit__(self, *exc):
                self.g.capture_end()             # raises on an invalidated capture: the stream is not restored
                self.ctx.__exit__(*exc)

        self.Stream, self.CUDAGraph, self.stream, self.graph = Stream, CUDAGraph, stream, graph
        self.synchronize = lambda device=None: None
        self.current_stream = lambda device=None: Stream()

    def pin_memory_thread_allocates(self):
        """A pinned-memory allocation from another thread, now."""
        def alloc():
            if self.mode == "global":
                self.invalidated = True
                self.thread_errors.append("operation not permitted when stream is capturing")
        t = threading.Thread(target=alloc)
        t.start()
        t.join()

    def install(self, monkeypatch):
        for name in ("Stream", "CUDAGraph", "stream", "graph", "synchronize", "current_stream"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))


def test_the_fake_follows_torch_graph_exit_order():
    """The fake's premise, read from the installed torch: ``graph.__exit__`` ends the capture before it restores
    the stream (so a failing ``capture_end`` leaves the thread on the capture stream)."""
    src = inspect.getsource(torch.cuda.graphs.graph.__exit__)
    assert src.index("capture_end()") < src.index("stream_ctx.__exit__")
    assert 'capture_error_mode: str = "global"' in inspect.getsource(torch.cuda.graphs.graph.__init__)


def test_capture_survives_the_pin_memory_thread(monkeypatch):
    """The trainers pin batches on CUDA with loader workers: a pin-memory thread allocating during the capture
    must neither invalidate it nor fail (thread_local capture mode)."""
    fake = FakeCuda()
    fake.install(monkeypatch)
    fn = Counter()

    def step(x):
        fake.pin_memory_thread_allocates()
        return fn(x)
    g = StepGraph(step, CPU, warmup=1, backend=CudaGraph)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3):
            g(torch.ones(2))
    assert g.status == "captured" and fake.replays == 2 and not fake.thread_errors
    assert fake.current == "default"


def test_a_capture_that_fails_restores_the_stream_and_releases_the_graph(monkeypatch):
    """A capture invalidated during capture: ``capture_end`` raises inside torch's ``graph.__exit__`` before its
    stream context exits; the outer stream context still puts the caller back on its stream, the graph (and its
    private pool) is reset, and the step runs eagerly from then on."""
    fake = FakeCuda()
    fake.install(monkeypatch)
    fn = Counter()

    def step(x):
        if fake.mode is not None:
            assert fake.current == "side"               # captured on the side stream
            fake.invalidated = True                     # e.g. an op that syncs with the host
        return fn(x)
    g = StepGraph(step, CPU, warmup=1, name="train step", backend=CudaGraph)
    with pytest.warns(UserWarning, match="previous error during capture"):
        outs = [g(torch.full((2,), float(i))) for i in range(4)]
    assert fake.current == "default" and fake.resets == 1 and fake.mode is None
    assert g.status != "captured" and fn.calls == 1 + 1 + 1 + 2 and fake.replays == 0
    assert [o[0].tolist() for o in outs] == [[2.0 * i] * 2 for i in range(4)]


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


def _ulps(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference between ``a`` and ``b`` in units of the last place of ``b``."""
    ulp = (torch.nextafter(b, torch.full_like(b, float("inf"))) - b).abs()
    return float(((a - b).abs() / ulp).max())


@pytest.mark.parametrize("weight", [0.0005, 0.2, 1 / 3, 0.5003, 0.9])
def test_the_fused_ema_update_is_within_one_ulp_of_lerp(weight):
    """``fused_lerp_`` (sub, mul by a 0-dim tensor, add: the CUDA multi-tensor path) against ``_foreach_lerp_``,
    for averaged weights near the trained ones (|ema| >= 0.1, steps of 1e-2): within one ulp, for the paper's
    weight 1 - 0.9995, debiased weights and both of lerp's branches."""
    g = torch.Generator().manual_seed(0)
    ema = [torch.randn(n, generator=g) for n in (10_000, 3_000)]
    ema = [e + e.sign() * 0.1 for e in ema]
    trained = [e + 1e-2 * torch.randn(e.shape, generator=g) for e in ema]
    a, b = [e.clone() for e in ema], [e.clone() for e in ema]
    w = torch.tensor(weight)
    torch._foreach_lerp_(a, trained, [w] * len(a))
    fused_lerp_(b, trained, w)
    for x, y in zip(b, a):
        assert _ulps(x, y) <= 1.0
    assert any(not torch.equal(x, y) for x, y in zip(b, a)) or weight == 0.0005   # a real, rounded difference


@pytest.mark.parametrize("debias", [False, True])
def test_the_ema_on_the_fused_path_tracks_the_lerp_path(debias, monkeypatch):
    """EMA.apply where the multi-tensor path is used (CUDA; here the CPU added to FUSED_DEVICE_TYPES): the first
    debiased update copies the weights exactly, and every update stays within one ulp-level step of the lerp path;
    the CPU default is the lerp path itself (eager CPU runs bit-identical)."""
    assert ema_module.FUSED_DEVICE_TYPES == {"cuda"}
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.sign() * 0.1)
    lerp = EMA(model, 0.9, debias)
    monkeypatch.setattr(ema_module, "FUSED_DEVICE_TYPES", frozenset({"cpu"}))
    fused = EMA(model, 0.9, debias)
    for t in range(6):
        with torch.no_grad():
            for p in model.parameters():       # a far first move: w - ema rounds, so only a copy gives w exactly
                p.mul_(-3.3) if debias and t == 0 else p.add_(1e-2 * torch.randn_like(p))
        with monkeypatch.context() as m:
            m.setattr(ema_module, "FUSED_DEVICE_TYPES", frozenset())
            lerp.update(model)
        fused.update(model)
        for a, b, w in zip(fused.model.parameters(), lerp.model.parameters(), model.parameters()):
            if debias and t == 0:
                assert torch.equal(a, w) and torch.equal(b, w)          # weight 1: the trained weights exactly
            assert _ulps(a, b) <= 2.0 * (t + 1), t                      # rounding differences, not drift


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
    assert [r.get("cuda_graph") for r in rows[1]] == ["captured"] * len(rows[1])     # the epoch rows say so
    assert all("cuda_graph" not in r for r in rows[0])
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


def test_only_a_step_marked_capturable_without_ddp_and_skip_is_captured():
    """The density trainer's train_step is marked; the classifier's (host-side augmentation) and an override that
    does not say so are not; DDP and --on-nonfinite skip rule capture out."""
    from classifiers_oe.train import ClassifierTask
    from density_oe.train import DensityTask
    from oe_core.run.cuda_graph import capturable, why_not_captured

    class Override(DensityTask):
        def train_step(self, model, batch, ctx):
            return super().train_step(model, batch, ctx)

    assert why_not_captured(DensityTask.train_step, "density", False, "stop") is None
    assert why_not_captured(ClassifierTask.train_step, "classifier", False, "stop") == \
        "the classifier trainer's step is not written for capture"
    assert "not written for capture" in why_not_captured(Override.train_step, "density", False, "stop")
    assert why_not_captured(capturable(lambda m, b, c: None), "x", False, "stop") is None
    assert why_not_captured(DensityTask.train_step, "density", True, "stop") == "not under DDP"
    assert "--on-nonfinite skip" in why_not_captured(DensityTask.train_step, "density", False, "skip")
