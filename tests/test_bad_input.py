"""Every bad input of the Reliability issue, through the real CLIs: exit code 2, one line on stderr, before any
training work (no checkpoint written)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifiers_oe import train as cls_train
from density_oe import train as pcnn_train
from oe_core.errors import cli_main

TINY_CLS = ["--dataset", "mini-id", "--image-size", "8", "--depth", "10", "--widen-factor", "1", "--epochs", "1",
            "--limit-steps", "1", "--batch-size", "8", "--oe-batch-size", "8", "--num-workers", "0",
            "--no-progress", "--device", "cpu"]
TINY_PCNN = ["--dataset", "mini-id", "--image-size", "8", "--nr-resnet", "1", "--nr-filters", "8",
             "--nr-logistic-mix", "2", "--epochs", "1", "--limit-steps", "1", "--batch-size", "8",
             "--num-workers", "0", "--no-progress", "--device", "cpu"]


def one_line_error(capsys, main, argv, match: str | tuple[str, ...], out: Path | None = None) -> None:
    """Exit 2 with one line holding every part of ``match`` (text only the intended error has: the offending
    value, the path it came from)."""
    rc = cli_main(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for part in (match,) if isinstance(match, str) else match:
        assert part in err[0], (part, err[0])
    assert "Traceback" not in err[0]
    if out is not None:
        assert not (out / "checkpoint.pt").exists()  # failed before any work


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert cli_main(cls_train.main, [*TINY_CLS, "--out", str(root / "clf")]) == 0
    return root


def test_unknown_dataset_name(tmp_path, capsys):
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--dataset", "cifar11", "--out", str(tmp_path / "r")],
                   "unknown dataset 'cifar11'", tmp_path / "r")


def test_unknown_model_name(tmp_path, capsys):
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--arch", "resnet18", "--out", str(tmp_path / "r")],
                   ("argument --arch: invalid choice: 'resnet18'",))


def test_unknown_mode(tmp_path, capsys):
    one_line_error(capsys, pcnn_train.main, [*TINY_PCNN, "--mode", "finetune", "--out", str(tmp_path / "r")],
                   ("argument --mode: invalid choice: 'finetune'",))


def test_missing_data_root(tmp_path, capsys):
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--dataset", "cifar10", "--image-size", "0",
                                            "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")],
                   ("dataset 'cifar10'", f"data root '{tmp_path / 'nowhere'}' does not exist",
                    "cifar-10-batches-py/"), tmp_path / "r")


def _textures_root(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "data" / "dtd" / "images" / "banded"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return tmp_path / "data"


def test_empty_image_folder(tmp_path, capsys):
    root = _textures_root(tmp_path, {})
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--mode", "oe_scratch", "--outliers", "textures",
                                            "--image-size", "0", "--dataset", "mini-id", "--data-root", str(root),
                                            "--out", str(tmp_path / "r")],
                   ("dataset 'textures': no images", f"looked in '{root / 'dtd' / 'images'}'"), tmp_path / "r")


def test_unreadable_image(tmp_path, capsys):
    root = _textures_root(tmp_path, {"broken.jpg": b"not a jpeg at all"})
    one_line_error(capsys, pcnn_train.main, [*TINY_PCNN, "--image-size", "0", "--dataset", "mini-id",
                                             "--mode", "oe_tune", "--init", str(tmp_path / "none"),
                                             "--outliers", "textures", "--data-root", str(root),
                                             "--out", str(tmp_path / "r")],
                   f"cannot read image '{root / 'dtd' / 'images' / 'banded' / 'broken.jpg'}'", tmp_path / "r")


def test_wrong_image_size_of_outliers(tmp_path, capsys):
    np.save(tmp_path / "300K_random_images.npy", np.zeros((20, 16, 16, 3), np.uint8))
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--image-size", "0", "--mode", "oe_scratch",
                                            "--outliers", "tinyimages300k", "--data-root", str(tmp_path),
                                            "--out", str(tmp_path / "r")],
                   ("300K_random_images.npy holds a uint8 array of shape (20, 16, 16, 3), expected uint8 "
                    "(N, 32, 32, 3)", f"looked in '{tmp_path}'"), tmp_path / "r")


def test_wrong_channel_count_of_outliers(tmp_path, capsys):
    np.save(tmp_path / "300K_random_images.npy", np.zeros((20, 32, 32, 1), np.uint8))
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--image-size", "0", "--mode", "oe_scratch",
                                            "--outliers", "tinyimages300k", "--data-root", str(tmp_path),
                                            "--out", str(tmp_path / "r")],
                   ("300K_random_images.npy holds a uint8 array of shape (20, 32, 32, 1)", f"looked in '{tmp_path}'"),
                   tmp_path / "r")


@pytest.mark.parametrize("main,args,match", [
    (cls_train.main, ["--lr", "-0.1"], "--lr must be positive"),
    (cls_train.main, ["--batch-size", "0"], "--batch-size must be positive"),
    (cls_train.main, ["--mode", "oe_scratch", "--outliers", "mini-outliers", "--lam", "-1"],
     ("--lam", "must be >= 0")),
    (pcnn_train.main, ["--lam", "-0.5"], "--lam must be >= 0, got -0.5"),
    (pcnn_train.main, ["--lr", "0"], "--lr must be positive, got 0.0"),
    (cls_train.main, ["--epochs", "abc"], ("--epochs", "invalid int value: 'abc'")),
])
def test_invalid_config_values(tmp_path, capsys, main, args, match):
    base = TINY_CLS if main is cls_train.main else TINY_PCNN
    one_line_error(capsys, main, [*base, *args, "--out", str(tmp_path / "r")], match, tmp_path / "r")


def test_checkpoint_of_the_wrong_kind(trained, tmp_path, capsys):
    one_line_error(capsys, pcnn_train.main, [*TINY_PCNN, "--mode", "oe_tune", "--init", str(trained / "clf"),
                                             "--outliers", "mini-outliers", "--out", str(tmp_path / "r")],
                   (f"checkpoint '{trained / 'clf' / 'checkpoint.pt'}' holds a classifier model",
                    "a density model is needed"), tmp_path / "r")


def test_checkpoint_of_the_wrong_shape(trained, tmp_path, capsys):
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--widen-factor", "2", "--mode", "oe_tune",
                                            "--init", str(trained / "clf"), "--outliers", "mini-outliers",
                                            "--out", str(tmp_path / "r")],
                   (f"'{trained / 'clf'}' was trained with other settings", "widen_factor: 1 vs 2"), tmp_path / "r")


def test_output_folder_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    one_line_error(capsys, cls_train.main, [*TINY_CLS, "--out", str(blocker / "run")],
                   f"output folder '{blocker / 'run'}' is not writable")
