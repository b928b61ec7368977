"""Dataclass configs -> CLI: defaults, list options, bool flags, one-line errors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from oe_core.cli_config import config_from_dict, config_to_dict, help_field, parse_config, require
from oe_core.errors import ConfigError


@dataclass
class Demo:
    """A demo config."""

    names: list[str] = help_field(["a"], "names")
    pair: tuple[str, ...] = help_field((), "pair")
    lr: Optional[float] = help_field(None, "lr (unset: per mode)")
    mode: str = help_field("x", "mode", choices=("x", "y"))
    flag: bool = help_field(True, "a flag")

    def validate(self) -> None:
        require(self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}")


def test_defaults_survive_parsing():
    cfg = parse_config(Demo, [])
    assert cfg == Demo() and cfg.names == ["a"] and cfg.pair == () and cfg.lr is None


def test_list_options_accumulate_and_tuples_stay_tuples():
    cfg = parse_config(Demo, ["--names", "b", "c", "--names", "d", "--pair", "p", "q", "--no-flag", "--lr", "0.5"])
    assert cfg.names == ["b", "c", "d"] and cfg.pair == ("p", "q") and cfg.flag is False and cfg.lr == 0.5


@pytest.mark.parametrize("argv,match", [(["--mode", "z"], "invalid choice: 'z'"), (["--lr", "-1"], "--lr must be"),
                                        (["--lr", "abc"], "invalid float value"), (["--bogus"], "unrecognized")])
def test_bad_values_raise_one_config_error(argv, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(Demo, argv)


def test_round_trip_through_json_dict():
    cfg = parse_config(Demo, ["--pair", "p", "--names", "n"])
    assert config_from_dict(Demo, config_to_dict(cfg)) == cfg
