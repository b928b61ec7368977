"""Detector objects (fit/predict) and the one registry, on tiny in-test models, with known answers for the
likelihood ratio and complexity scores; the analysis binding (uint8 batches -> model inputs -> scores)."""
from __future__ import annotations

import io
import math
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from analysis.load_model import ClassifierModel, DensityModel
from density_oe.perturb import mutate
from analysis.cached_scores import BoundDetector
from classifiers_oe.detectors import MSP
from density_oe.complexity import complexity_bits_per_dim
from density_oe.detectors import BitsPerDim, ComplexityCorrected, LikelihoodRatio
from oe_core.data.transforms import CIFAR_MEAN, CIFAR_STD
from oe_core.detectors import DETECTORS, Detector, detectors_for, get_detector
from oe_core.errors import ConfigError, OEError
from oe_core.metrics import auroc

SUITE = {"msp", "max_logit", "energy", "xent_uniform", "bpd", "likelihood_ratio", "complexity_png", "complexity_zlib",
         "typicality", "typicality_m2", "typicality_m10", "typicality_m25", "likelihood_regret"}


def _images(n: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


class TinyClassifier(nn.Module):
    def __init__(self, size: int = 8, classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * size * size, classes)

    def forward(self, x):
        return 3.0 * self.fc(x.flatten(1))


def _logits_np(net: nn.Module, x: torch.Tensor, raw: bool) -> np.ndarray:
    """Logits from an independent float64 re-implementation of the input scaling."""
    v = x.double().numpy() / 255.0
    if raw:
        v = v * 255.0 / 127.5 - 1.0
    else:
        v = (v - np.array(CIFAR_MEAN)[:, None, None]) / np.array(CIFAR_STD)[:, None, None]
    w = net.fc.weight.detach().double().numpy()
    b = net.fc.bias.detach().double().numpy()
    return 3.0 * (v.reshape(len(v), -1) @ w.T + b)


def _score(name: str, model, x: torch.Tensor, background=None) -> torch.Tensor:
    """Scores of uint8 ``x`` through the analysis binding of the registered detector ``name``."""
    return BoundDetector(get_detector(name), model, background).scores(model, x)


def test_registry_lists_every_detector_with_metadata():
    assert SUITE <= set(DETECTORS.names())
    assert {get_detector(n).source for n in set(DETECTORS.names()) - SUITE} <= {"pytorch-ood"}
    for name in DETECTORS.names():
        d = get_detector(name)
        assert d.kind in ("classifier", "density") and d.units and d.paper_name and d.description
    assert [d.name for d in detectors_for("classifier", ["auto"])] == ["msp"]
    assert [d.name for d in detectors_for("density", ["auto"])] == ["bpd"]
    assert [d.name for d in detectors_for("density", ["msp", "bpd", "likelihood_ratio"])] == ["bpd", "likelihood_ratio"]
    assert get_detector("likelihood_ratio").needs_background
    with pytest.raises(OEError, match="unknown detector"):
        get_detector("nope")


def test_detectors_are_objects_with_fit_and_predict():
    net = TinyClassifier().eval()
    det = MSP(net)
    assert isinstance(det, Detector) and det.fit([]) is det and not det.requires_fit
    v = torch.randn(5, 3, 8, 8)
    logits = net(v)
    torch.testing.assert_close(det.predict(v), det.predict_features(logits))
    torch.testing.assert_close(det(v), -torch.softmax(logits.double(), 1).amax(1))
    assert isinstance(get_detector("msp").build(net), MSP)


@pytest.mark.parametrize("raw", [False, True])
def test_classifier_scores_match_float64_reference(raw):
    net = TinyClassifier()
    x = _images(16)
    model = ClassifierModel(net.eval()).for_dataset(fed_raw=raw)
    z = _logits_np(net, x, raw)
    lse = np.log(np.sum(np.exp(z - z.max(1, keepdims=True)), 1)) + z.max(1)
    p = np.exp(z - lse[:, None])
    expect = {"msp": -p.max(1), "max_logit": -z.max(1), "energy": -lse, "xent_uniform": z.mean(1) - lse}
    for name, ref in expect.items():
        got = _score(name, model, x)
        assert got.dtype == torch.float64 and got.shape == (16,)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_msp_of_confident_images_does_not_saturate():
    """Logit gaps of 20 and 25: float32 softmax gives max prob 1.0 for both (a tie); float64 keeps them apart."""
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.tensor([[20.0, 0.0], [25.0, 0.0]])

    s = MSP(Fixed()).predict(_images(2).float())
    assert torch.softmax(torch.tensor([[20.0, 0.0], [25.0, 0.0]]), 1).amax(1).tolist() == [1.0, 1.0]
    assert s[0] > s[1] and s[1] > -1.0


def test_kind_mismatch_and_missing_background_are_clear_errors():
    clf = ClassifierModel(TinyClassifier().eval(), label="c")
    dens = DensityModel(TinyDensity(1.0, 0.0), label="d")
    with pytest.raises(OEError, match="scores density models, but 'c' is a classifier"):
        _score("bpd", clf, _images(2))
    with pytest.raises(ConfigError, match="needs a background"):
        _score("likelihood_ratio", dens, _images(2))


# ----------------------------------------------------------------------------- density detectors
class LogProbModule(nn.Module):
    """The density-model interface: ``log_prob(x)`` = the module's output (nats per image)."""

    def log_prob(self, v):
        return self(v)


class TinyDensity(LogProbModule):
    """A fake density: log p(x) = -(a * complexity(x) + b * semantic(x)) nats, per image, where complexity is
    the mean absolute horizontal pixel difference and semantic is 1 for bright images (mean > 0 in [-1, 1])."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, v):
        tv = (v[..., 1:] - v[..., :-1]).abs().flatten(1).mean(1)
        semantic = (v.flatten(1).mean(1) > 0).float()
        return -(self.a * tv + self.b * semantic) * 1000.0


def _id_and_ood(n: int = 40, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """ID: dark, noisy images; OOD: bright, smooth images (simpler, so *more* likely under a plain model)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 100, (n, 3, size, size), generator=g, dtype=torch.uint8)
    ood = (200 + torch.randint(0, 4, (n, 3, size, size), generator=g)).to(torch.uint8)
    return ids, ood


def test_bits_per_dim_from_log_prob():
    x = _images(5)
    model = DensityModel(TinyDensity(1.0, 2.0))
    lp = TinyDensity(1.0, 2.0)(x.double() / 127.5 - 1).numpy()
    got = _score("bpd", model, x).numpy()
    np.testing.assert_allclose(BitsPerDim(TinyDensity(1.0, 2.0)).predict(x.double() / 127.5 - 1).numpy(), got)
    np.testing.assert_allclose(got, -lp / (3 * 8 * 8 * math.log(2)), rtol=1e-6)


def test_likelihood_ratio_removes_the_complexity_term():
    """The model's likelihood mixes complexity and a semantic term; the background explains exactly the
    complexity part.  bpd alone ranks the smooth OOD images as *more* in-distribution (AUROC 0); the
    ratio keeps only the semantic term: OOD scores 1000/(d ln 2) higher, ID 0 (AUROC 1)."""
    ids, ood = _id_and_ood()
    model = DensityModel(TinyDensity(10.0, 1.0), label="m")
    background = DensityModel(TinyDensity(10.0, 0.0), label="bg")
    assert auroc(_score("bpd", model, ids), _score("bpd", model, ood)) == 0.0
    s_id, s_ood = _score("likelihood_ratio", model, ids, background), _score("likelihood_ratio", model, ood, background)
    assert isinstance(get_detector("likelihood_ratio").build(model.net, background=background.net), LikelihoodRatio)
    d = 3 * 8 * 8
    np.testing.assert_allclose(s_id.numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(s_ood.numpy(), 1000.0 / (d * math.log(2)), rtol=1e-6)
    assert auroc(s_id, s_ood) == 1.0


def _png_bits_per_dim(img_chw: np.ndarray) -> float:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img_chw.transpose(1, 2, 0))).save(buf, format="PNG", optimize=True)
    return 8.0 * len(buf.getvalue()) / img_chw.size


class ComplexityDensity(LogProbModule):
    """A fake density whose log-likelihood is exactly minus the compressed length: -L(x) d ln 2 nats."""

    def __init__(self, compressor: str):
        super().__init__()
        self.compressor = compressor

    def forward(self, v):
        x = torch.round((v + 1) * 127.5).to(torch.uint8)
        return -complexity_bits_per_dim(x, self.compressor) * x[0].numel() * math.log(2)


def test_complexity_compressed_lengths_independent():
    x = torch.cat([_images(3, size=16), torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)])
    hwc = x.permute(0, 2, 3, 1).contiguous().numpy()
    np.testing.assert_allclose(complexity_bits_per_dim(x, "zlib").numpy(),
                               [8.0 * len(zlib.compress(h.tobytes(), 9)) / h.size for h in hwc])
    np.testing.assert_allclose(complexity_bits_per_dim(x, "png").numpy(), [_png_bits_per_dim(i) for i in x.numpy()])
    noise, flat = complexity_bits_per_dim(x, "zlib")[:3], complexity_bits_per_dim(x, "zlib")[3:]
    assert (noise >= 8.0).all() and (noise < 8.5).all()  # random bytes do not compress
    assert (flat < 0.5).all()
    with pytest.raises(OEError, match="unknown compressor"):
        complexity_bits_per_dim(x, "flif")
    with pytest.raises(OEError, match="uint8 RGB"):
        complexity_bits_per_dim(x.float(), "png")


@pytest.mark.parametrize("compressor", ["png", "zlib"])
def test_complexity_corrected_score_is_constant_when_likelihood_is_complexity(compressor):
    x = torch.cat([_images(4, seed=3), _id_and_ood(4)[1], torch.zeros(2, 3, 8, 8, dtype=torch.uint8)])
    model = DensityModel(ComplexityDensity(compressor))
    s = _score(f"complexity_{compressor}", model, x)
    det = get_detector(f"complexity_{compressor}").build(model.net)
    assert isinstance(det, ComplexityCorrected) and det.compressor == compressor
    np.testing.assert_allclose(s.numpy(), 0.0, atol=1e-9)


def test_complexity_correction_flags_simple_images_under_a_flat_likelihood():
    """With the same likelihood for every image, S = const - L(x): the simplest images score highest."""
    class Flat(LogProbModule):
        def forward(self, v):
            return torch.full((v.shape[0],), -1000.0, dtype=torch.float64)

    ids, ood = _id_and_ood()
    model = DensityModel(Flat())
    s_id, s_ood = _score("complexity_zlib", model, ids), _score("complexity_zlib", model, ood)
    const = 1000.0 / (3 * 8 * 8 * math.log(2))
    np.testing.assert_allclose(s_id.numpy(), const - complexity_bits_per_dim(ids, "zlib").numpy(), rtol=1e-9)
    assert auroc(s_id, s_ood) == 1.0


# ----------------------------------------------------------------------------- mutate
def test_mutate_rate_fraction_and_uniform_values():
    x = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    assert torch.equal(mutate(x, 0.0, torch.Generator().manual_seed(0)), x)
    y = mutate(x, 0.3, torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    # a replaced value is 0 again with probability 1/256
    assert abs((y != 0).double().mean().item() - 0.3 * 255 / 256) < 0.01
    full = mutate(x, 1.0, torch.Generator().manual_seed(1))
    counts = torch.bincount(full.flatten().long(), minlength=256).double()
    assert counts.min() > 0 and abs(counts.mean().item() - x.numel() / 256) < 1e-9
    assert (counts.max() / counts.min()).item() < 2.0  # roughly uniform over 0..255


def test_mutate_is_deterministic_per_generator_and_validates():
    x = _images(4)
    a = mutate(x, 0.5, torch.Generator().manual_seed(7))
    b = mutate(x, 0.5, torch.Generator().manual_seed(7))
    c = mutate(x, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    untouched = a == x
    assert untouched.any() and (~untouched).any()
    with pytest.raises(OEError, match="rate"):
        mutate(x, 1.5)
    with pytest.raises(OEError, match="uint8"):
        mutate(x.float(), 0.1)
