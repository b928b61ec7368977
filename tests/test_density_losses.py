"""The OE margin ranking loss for density models and its margin units."""
from __future__ import annotations

import math

import pytest
import torch

from density_oe.losses import OEMarginLoss, margin_bits_per_dim, margin_ranking_loss, oe_density_loss
from oe_core.errors import ConfigError


def test_hand_worked_example_with_unequal_batch_sizes():
    """In bpd (2.0, 3.0), outliers (2.5, 4.0, 6.0), margin 1:
    pairs max(0, 1 + in - out): in 2.0 -> 0.5, 0, 0; in 3.0 -> 1.5, 0, 0 -> mean 2/6.
    Total with lam 0.5: mean(in) 2.5 + 0.5 * 1/3."""
    bpd_in = torch.tensor([2.0, 3.0], requires_grad=True)
    bpd_out = torch.tensor([2.5, 4.0, 6.0], requires_grad=True)
    assert margin_ranking_loss(bpd_in, bpd_out, 1.0).item() == pytest.approx(2 / 6)
    loss = oe_density_loss(bpd_in, bpd_out, margin=1.0, lam=0.5)
    assert loss.item() == pytest.approx(2.5 + 0.5 / 3)
    loss.backward()
    # d/d in_i = 1/2 + lam * (#active pairs of i) / 6; d/d out_j = -lam * (#active pairs of j) / 6
    assert bpd_in.grad.tolist() == pytest.approx([0.5 + 0.5 / 6, 0.5 + 0.5 / 6])
    assert bpd_out.grad.tolist() == pytest.approx([-0.5 * 2 / 6, 0.0, 0.0])


def test_satisfied_margin_gives_only_the_likelihood_term():
    bpd_in = torch.tensor([3.0, 3.1])
    bpd_out = torch.tensor([5.0, 4.2])
    assert oe_density_loss(bpd_in, bpd_out, margin=1.0, lam=10.0).item() == pytest.approx(3.05)


def test_margin_units():
    d = 3072
    assert margin_bits_per_dim(1.0, "bits_per_dim", d) == 1.0
    assert margin_bits_per_dim(1.0, "nats_per_dim", d) == pytest.approx(1 / math.log(2))
    assert margin_bits_per_dim(3072.0, "bits_per_image", d) == pytest.approx(1.0)
    # "num_pixels" nats with pixels = 32*32: 1024 / (3072 ln 2) = 0.481 bits/dim
    assert margin_bits_per_dim(1024.0, "nats_per_image", d) == pytest.approx(0.4808983469629878)
    with pytest.raises(ConfigError, match="margin unit"):
        margin_bits_per_dim(1.0, "pixels", d)


def test_margin_loss_module_converts_its_margin_unit():
    bpd_in = torch.tensor([2.0, 3.0])
    bpd_out = torch.tensor([2.5, 4.0, 6.0])
    d = 48
    loss = OEMarginLoss(margin=d * math.log(2), lam=0.5, unit="nats_per_image", num_dims=d)  # = 1 bit/dim
    assert loss.margin == pytest.approx(1.0)
    assert loss(bpd_in, bpd_out).item() == pytest.approx(2.5 + 0.5 / 3)
    assert OEMarginLoss()(bpd_in, bpd_out).item() == pytest.approx(2.5 + 1 / 3)   # defaults m = 1, lam = 1
    with pytest.raises(ConfigError, match="needs num_dims"):
        OEMarginLoss(1024.0, 1.0, "nats_per_image")


def test_defaults_repr_and_error_texts():
    import inspect
    params = inspect.signature(OEMarginLoss).parameters
    assert (params["margin"].default, params["lam"].default, params["unit"].default) == (1.0, 1.0, "bits_per_dim")
    assert repr(OEMarginLoss()) == "OEMarginLoss(margin=1 bits/dim, lam=1.0)"
    assert OEMarginLoss(2.0, unit="nats_per_dim").margin == pytest.approx(2 / math.log(2))   # no num_dims needed
    with pytest.raises(ConfigError, match=r"^margin unit 'pixels' is not one of \['bits_per_dim', 'nats_per_dim', "
                                          r"'bits_per_image', 'nats_per_image'\]$"):
        margin_bits_per_dim(1.0, "pixels", 3072)
    with pytest.raises(ConfigError, match=r"^OEMarginLoss: a margin in bits_per_image needs num_dims \(3 \* H \* W\)$"):
        OEMarginLoss(1.0, unit="bits_per_image")


def test_the_hinge_is_zero_exactly_at_the_margin():
    bpd_in, bpd_out = torch.tensor([3.0]), torch.tensor([4.0, 3.5])
    assert margin_ranking_loss(bpd_in, bpd_out, 1.0).item() == pytest.approx(0.25)   # (0 + 0.5) / 2
    assert oe_density_loss(bpd_in, bpd_out, 1.0, 2.0).item() == pytest.approx(3.0 + 2.0 * 0.25)
