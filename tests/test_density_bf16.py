"""bf16 autocast keeps the likelihood accurate: the head and the DMOL parameters stay float32, and bf16 scoring of
the same weights is within 0.01 bits/dim of float32 scoring, image by image."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.pixelcnn_cases import uint8_loader
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.scorer import score_dataset
from density_oe.pixelcnn.weight_norm import data_dependent_init
from density_oe.units import bits_per_dim

CPU = torch.device("cpu")


def smooth_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """uint8 images with structure a small model can learn: upsampled 4x4 colour fields plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear",
                                           align_corners=False)
    img = base + 0.03 * torch.randn(n, 3, size, size, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def trained_model(images: torch.Tensor, steps: int = 20) -> PixelCNNpp:
    """A small PixelCNN++ past its initialisation (data-dependent init, a few Adam steps)."""
    torch.manual_seed(0)
    model = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=16, nr_logistic_mix=5))
    x = images.float() / 127.5 - 1.0
    data_dependent_init(model, x[:16])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        loss = bits_per_dim(model.train().log_prob(x), x[0].numel()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_head_and_dmol_parameters_stay_float32_under_bf16_autocast():
    model = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=8, nr_logistic_mix=2)).eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        seen = {}

        def record(module, args):
            seen["dtype"] = args[0].dtype

        hook = model.nin_out.register_forward_pre_hook(record)
        params = model(x)
        hook.remove()
    assert params.dtype == torch.float32 and seen["dtype"] == torch.float32


def test_bf16_scoring_is_within_a_hundredth_of_a_bit_of_float32_on_the_same_weights():
    images = smooth_images(48)
    model = trained_model(images[:32])
    fp32 = score_dataset(model, uint8_loader(images, 16), CPU, "none")
    bf16 = score_dataset(model, uint8_loader(images, 16), CPU, "bf16")
    assert fp32.dtype == bf16.dtype == np.float64
    assert fp32.mean() < 7.5                                  # trained past the uniform 8 bits/dim
    assert np.abs(bf16 - fp32).max() <= 0.01
    assert not np.array_equal(bf16, fp32)                     # bf16 did run
