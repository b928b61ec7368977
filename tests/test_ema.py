"""density_oe.ema.EMA beyond the averaging formula (tests/test_density_train.py): its defaults, its copy, buffers,
its state and the debiased first update."""
from __future__ import annotations

import inspect

import torch
from torch import nn

from density_oe.ema import EMA


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_defaults_are_the_tf_decay_without_debiasing():
    params = inspect.signature(EMA).parameters
    assert (params["decay"].default, params["debias"].default) == (0.9995, False)
    ema = EMA(net())
    assert ema.weight() == 1.0 - 0.9995 and ema.updates == 0


def test_the_average_is_a_frozen_eval_copy_that_takes_the_buffers():
    model = net()
    ema = EMA(model, decay=0.5)
    assert ema.model is not model and not ema.model.training and model.training
    assert not any(p.requires_grad for p in ema.model.parameters())
    model(torch.randn(8, 3))                                   # moves the BatchNorm running statistics
    ema.update(model)
    for b_ema, b in zip(ema.model.buffers(), model.buffers()):
        assert torch.equal(b_ema, b)
    assert ema.updates == 1


def test_debiased_weights_start_at_one_and_follow_adams_correction():
    model = net()
    ema = EMA(model, decay=0.9, debias=True)
    weights = []
    for _ in range(3):
        weights.append(ema.weight())
        ema.update(model)
    assert weights[0] == 1.0 and weights == [(1 - 0.9) / (1 - 0.9 ** t) for t in (1, 2, 3)]
    first = EMA(model, decay=0.9, debias=True)
    with torch.no_grad():
        model[0].weight.add_(3.0)
    first.update(model)
    assert torch.equal(first.model[0].weight, model[0].weight)   # weight 1: the first update copies w exactly


def test_state_round_trip_restores_the_average_and_the_update_count():
    model = net()
    ema = EMA(model, decay=0.9, debias=True)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    ema.update(model)
    other = EMA(net(), decay=0.9, debias=True)
    other.load_state_dict(ema.state_dict(), updates=ema.updates)
    assert other.updates == 2 and other.weight() == ema.weight()
    for a, b in zip(other.model.state_dict().values(), ema.model.state_dict().values()):
        assert torch.equal(a, b)
    fresh = EMA(net(), decay=0.9, debias=True)
    fresh.load_state_dict(ema.state_dict())
    assert fresh.updates == 0


def test_a_float64_model_is_averaged_with_a_float64_weight():
    model = nn.Linear(3, 2).double()
    ema = EMA(model, decay=0.9)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert ema.model.weight.dtype == torch.float64
    # lerp with the weight 1 - 0.9 held in float64 (a float32 weight is off by ~1e-9 here)
    assert torch.equal(ema.model.weight, torch.lerp(before, model.weight.detach(), torch.tensor(1 - 0.9,
                                                                                                dtype=torch.float64)))
