"""The model's own resolution: a density checkpoint records the image size it was trained at; sampling and scoring
default to it, a dataset of another native size is resized to it (and the output says so), and an explicit
--image-size that differs is refused unless forced."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from density_oe import sample, score
from density_oe.pixelcnn.model import PixelCNNConfig, PixelCNNpp
from density_oe.resize import resize_uint8
from density_oe.weights import load_density_model
from oe_core.cli_config import config_to_dict
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.errors import cli_main
from oe_core.run import save_checkpoint


@pytest.fixture(scope="module")
def model8(tmp_path_factory):
    """A tiny PixelCNN++ checkpoint that says it was trained on 8x8 images (as density_oe.train records it)."""
    folder = tmp_path_factory.mktemp("pcnn8")
    torch.manual_seed(0)
    net = PixelCNNpp(PixelCNNConfig(nr_resnet=1, nr_filters=4, nr_logistic_mix=1, dropout=0.0))
    state = {"kind": "density", "config": config_to_dict(net.cfg), "model": net.state_dict(), "eval_model": None,
             "task": {"image_size": [8, 8]}}
    save_checkpoint(folder, state, kind="density", step=0, epoch=0)
    return folder


def _bpd(folder, images: torch.Tensor) -> np.ndarray:
    from density_oe.units import bits_per_dim
    model, _ = load_density_model(folder)
    x = to_unit_range(images)
    with torch.no_grad():
        return bits_per_dim(model.log_prob(x), x[0].numel()).double().numpy()


def test_checkpoint_size_is_read_back(model8):
    assert load_density_model(model8)[0].trained_size == (8, 8)


def test_sampling_defaults_to_the_training_size(model8, tmp_path, capsys):
    assert cli_main(sample.main, ["--ckpt", str(model8), "--n", "4", "--nrow", "2", "--device", "cpu",
                                  "--out", str(tmp_path / "s.png")]) == 0
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (2 + 2 * (8 + 2), 2 + 2 * (8 + 2))
    assert "of 8x8" in capsys.readouterr().err


def test_other_size_is_refused_unless_forced(model8, tmp_path, capsys):
    for main, extra in ((sample.main, ["--n", "1", "--out", str(tmp_path / "s.png")]),
                        (score.main, ["--dataset", "gaussian", "--limit", "4", "--out", str(tmp_path / "s.npy"),
                                      "--num-workers", "0"])):
        assert cli_main(main, ["--ckpt", str(model8), "--image-size", "12", "--device", "cpu", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "differs from the 8x8 the model was trained at" in err[0] and "--force-size" in err[0]
    assert cli_main(sample.main, ["--ckpt", str(model8), "--image-size", "12", "--force-size", "--n", "1",
                                  "--device", "cpu", "--out", str(tmp_path / "s.png")]) == 0
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (12, 12)  # one image: no grid padding


def test_generated_sets_are_built_at_the_training_size(model8, tmp_path, capsys):
    assert cli_main(score.main, ["--ckpt", str(model8), "--dataset", "gaussian", "--limit", "6", "--device", "cpu",
                                 "--num-workers", "0", "--no-progress", "--out", str(tmp_path / "g.npy")]) == 0
    assert "built at 8x8" in capsys.readouterr().err
    ds = get_dataset("gaussian", size=8)
    want = _bpd(model8, torch.stack([ds[i][0] for i in range(6)]))
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), want, rtol=1e-5)


def test_a_fixed_size_set_is_resized_and_the_output_says_so(model8, write_cifar, tmp_path, capsys):
    fx = write_cifar("cifar10")  # 32x32 images on disk
    assert cli_main(score.main, ["--ckpt", str(model8), "--dataset", "cifar10", "--split", "test",
                                 "--data-root", str(fx.root), "--device", "cpu", "--num-workers", "0",
                                 "--no-progress", "--out", str(tmp_path / "c.npy")]) == 0
    err = capsys.readouterr().err
    assert "resized from 32x32 to 8x8 (Resize + CenterCrop" in err
    x = torch.from_numpy(fx.test_images).permute(0, 3, 1, 2).contiguous()
    want = _bpd(model8, torch.stack([resize_uint8(im, (8, 8)) for im in x]))
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), want, rtol=1e-5)
    assert want.shape == (3,) and not np.allclose(want, _bpd(model8, x))  # the resize matters
