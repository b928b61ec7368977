"""Command lines for the suite's tools, built from the tools' own config dataclasses.

Every orchestrator (the paper's run graph, the mini-study) starts a trainer or an evaluator the same way: the
settings that make a run what it is (``mode``, ``dataset``, ``out``, ...) always, and of the recipe only what
differs from the config's default, so the defaults stay the one home of the recipe::

    >>> from classifiers_oe.config import ClassifierConfig
    >>> config_argv(ClassifierConfig, {"mode": "oe_tune", "init": "runs/base", "lr": 0.001, "epochs": 3},
    ...             always=("mode", "init"))
    ['--mode', 'oe_tune', '--init', 'runs/base', '--epochs', '3']

(``lr`` 0.001 is the oe_tune default, so it is left out.)  :func:`resolve` reads a command line back into its
config, the way the tool will see it, without checking it (the tool does that when it runs).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterable, Mapping, Sequence, Type, TypeVar

from oe_core.cli_config import build_parser


C = TypeVar("C")


def flag(name: str) -> str:
    """The option of config field ``name`` (``lr_decay`` -> ``--lr-decay``), as ``oe_core.cli_config`` makes it."""
    return "--" + name.replace("_", "-")


def option_argv(name: str, value: Any) -> list[str]:
    """``[--name, value...]`` for one field: booleans as ``--name`` / ``--no-name``, lists as several values."""
    if isinstance(value, bool):
        return [flag(name) if value else "--no-" + name.replace("_", "-")]
    if isinstance(value, (list, tuple)):
        return [flag(name), *map(str, value)] if value else []
    return [flag(name), str(value)]


def config_argv(cls: Type[C], values: Mapping[str, Any], always: Iterable[str] = ()) -> list[str]:
    """The options of ``cls``'s generated CLI that give ``values``, in their order.

    Fields named in ``always`` are passed as given; any other field is passed only where it differs from the
    default ``cls`` resolves for the ``always`` fields (so an oe_tune run compares with the oe_tune defaults).
    An unknown field name raises ``KeyError`` naming it and the config.
    """
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in values if k not in names]
    if unknown:
        raise KeyError(f"{cls.__name__} has no field {unknown[0]!r}")
    always = tuple(always)
    base = cls(**{k: values[k] for k in always if k in values})  # its defaults for these
    argv: list[str] = []
    for name, value in values.items():
        if name in always or value != getattr(base, name):
            argv += option_argv(name, value)
    return argv


IDENTITY = ("arch", "mode", "dataset", "data_root", "init", "out")  # what makes a run this run: always passed


def run_argv(cls: Type[C], values: Mapping[str, Any]) -> list[str]:
    """The options of ``cls``'s tool for ``values``: the :data:`IDENTITY` fields among them always, the others
    where they differ from the defaults (:func:`config_argv`).  The paper's graph and the mini-study build every
    command with it."""
    return config_argv(cls, values, always=[k for k in IDENTITY if k in values])


def tool_cmd(py: str, module: str, argv: Sequence[str]) -> list[str]:
    """``[py, -m, module, *argv]``: how every tool of the suite is started."""
    return [py, "-m", module, *argv]


def resolve(cls: Type[C], argv: Sequence[str]) -> C:
    """``argv`` read into ``cls`` as the tool's CLI reads it (later options win, mode defaults filled), without
    validation and ignoring options ``cls`` does not know."""
    ns = vars(build_parser(cls).parse_known_args(list(argv))[0])
    ns.pop("debug", None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in list(ns.items()):
        if value is None and name in fields and typing.get_origin(_base(hints[name])) in (list, tuple):
            del ns[name]  # a list option left unset keeps the dataclass default
    return cls(**ns)


def _base(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp
