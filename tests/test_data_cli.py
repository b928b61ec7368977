"""``python -m oe_core.data``: the dataset listing and --check."""
from __future__ import annotations

import pytest

from oe_core.data.__main__ import main
from oe_core.errors import cli_main


def test_listing_shows_role_files_and_url(capsys):
    assert main(["--pattern", "tinyimages*"]) == 0
    out = capsys.readouterr().out
    assert "tinyimages300k  [outlier" in out and "<data-root>/300K_random_images.npy" in out
    assert "https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy" in out
    assert "cifar10" not in out


def test_check_reports_present_and_missing(write_cifar, capsys):
    fx = write_cifar("cifar10")
    assert main(["--check", "--data-root", str(fx.root), "--pattern", "[ct]*"]) == 1  # some are missing
    captured = capsys.readouterr()
    out = captured.out
    assert "train: ok (10 images)" in out and "test: ok (3 images)" in out
    assert "MISSING: dataset 'cifar100': missing" in out and "MISSING: dataset 'textures'" in out
    assert "cifar100:train, cifar100:test" in captured.err and "cifar10:" not in captured.err
    assert main(["--check", "--data-root", str(fx.root), "--pattern", "cifar10"]) == 0  # all present
    assert "train: ok" in capsys.readouterr().out


def test_check_needs_a_root_and_bad_pattern_is_an_error(capsys):
    assert cli_main(main, ["--check"]) == 2
    assert "error: --check needs --data-root DIR" in capsys.readouterr().err
    assert cli_main(main, ["--pattern", "nosuch*"]) == 2
    assert "no dataset matches" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for option in ("--data-root", "--check", "--pattern"):
        assert option in out
