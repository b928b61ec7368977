"""Configs are dataclasses with the paper's defaults; the CLI is generated from them.

:func:`parse_config` builds an ``argparse`` parser from the dataclass's :func:`help_field` fields (``--field-name
value``, booleans as ``--flag/--no-flag``), validates the result (choices, then the dataclass's ``validate()``) and
returns the instance; :func:`save_config` writes it beside a run's results.  Renamed options keep working: the
field's ``deprecated=("old-name",)`` and the class's ``RENAMED = {"old_field": "new_field"}`` (:func:`upgrade_dict`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import typing
import warnings
from pathlib import Path
from typing import Any, Sequence, Type, TypeVar

from .atomic import atomic_write_text
from .errors import ConfigError

C = TypeVar("C")


def help_field(default: Any, help: str, choices: Sequence[Any] | None = None,
               deprecated: Sequence[str] = (), positional: bool = False, **kw) -> Any:
    """``dataclasses.field`` with a help string (and optional choices) for the generated CLI.  ``deprecated``: old
    option names (without ``--``) still accepted, with a warning naming the new one (the help says "formerly
    --old-name"); ``positional``: a list field given as bare arguments (``tool fetch a b``)."""
    meta: dict[str, Any] = {"help": help}
    if positional:
        meta["positional"] = True
    if choices is not None:
        meta["choices"] = tuple(choices)
    if deprecated:
        meta["deprecated"] = tuple(deprecated)
        meta["help"] += f" (formerly {', '.join('--' + d for d in deprecated)})"
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def _base_type(tp: Any) -> Any:
    """``tp`` without ``Optional``."""
    if typing.get_origin(tp) is typing.Union:
        return _base_type(next(a for a in typing.get_args(tp) if a is not type(None)))
    return tp


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]


def _tuples(cls: Any, kw: dict) -> dict:
    """``kw`` with the lists given for ``cls``'s tuple fields as tuples."""
    hints = typing.get_type_hints(cls)
    return {k: tuple(v) if isinstance(v, list) and typing.get_origin(_base_type(hints[k])) is tuple else v
            for k, v in kw.items()}


class _DeprecatedAlias(argparse.Action):
    """An old option name: stores into the new field and warns (FutureWarning: shown to users by default)."""

    def __init__(self, option_strings, dest, new_flag: str = "", store: argparse.Action | None = None, **kw):
        super().__init__(option_strings, dest, **kw)
        self.new_flag, self.store = new_flag, store

    def __call__(self, parser, namespace, values, option_string=None):
        warnings.warn(f"{option_string} is deprecated; use {self.new_flag}", FutureWarning, stacklevel=2)
        self.store(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`ConfigError` (one line, exit 2 via ``cli_main``) instead of printing usage."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see --help)")


def _with_default(help: str, default: Any, is_bool: bool) -> str:
    """``help`` plus ``(default: X)`` -- unless the help already says what happens by default, the default is
    empty, or the option is an off-by-default flag (argparse's own default formatter repeats such defaults)."""
    said = re.search(r"(^|[(;,]\s*)(default|unset)\b", help, re.IGNORECASE) is not None
    if said or default in (None, "", [], ()) or (is_bool and default is False):
        return help.replace("%", "%%")
    shown = "on" if is_bool else (" ".join(map(str, default)) if isinstance(default, (list, tuple)) else default)
    return f"{help} (default: {shown})".replace("%", "%%")


def build_parser(cls: Type[C], prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description or (cls.__doc__ or "").strip(),
                     formatter_class=argparse.HelpFormatter)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = _base_type(hints[f.name])
        default = _default(f)
        flag = "--" + f.name.replace("_", "-")
        h = _with_default(f.metadata.get("help", ""), default, tp is bool)
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=h)
            continue
        if f.metadata.get("positional"):
            parser.add_argument(f.name, nargs="*", default=[], help=h, metavar=f.name.upper().rstrip("S"))
            continue
        kw: dict[str, Any] = dict(dest=f.name, default=default, help=h)
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
            kw.update(nargs="+", type=inner, action="extend")
            kw["default"] = None  # "extend" appends to the default; filled in after parsing
        else:
            kw["type"] = tp if tp in (int, float, str) else str
        action = parser.add_argument(flag, **kw)
        for old in f.metadata.get("deprecated", ()):
            parser.add_argument("--" + old, dest=f.name, default=argparse.SUPPRESS, type=kw.get("type"),
                                nargs=kw.get("nargs"), choices=kw.get("choices"), action=_DeprecatedAlias,
                                new_flag=flag, store=action, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return parser


def parse_config(cls: Type[C], argv: Sequence[str] | None = None, prog: str | None = None,
                 description: str | None = None) -> C:
    """Parse ``argv`` into a validated ``cls`` instance."""
    parser = build_parser(cls, prog=prog, description=description)
    ns = vars(parser.parse_args(argv))
    ns.pop("debug", None)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # list/tuple options left unset keep the dataclass default
        if f.name in ns and ns[f.name] is None and typing.get_origin(_base_type(hints[f.name])) in (list, tuple):
            ns[f.name] = _default(f)
    cfg = cls(**_tuples(cls, ns))
    validate(cfg)
    return cfg


def validate(cfg: Any) -> None:
    """Check ``choices`` metadata and call ``cfg.validate()`` if defined; raise :class:`ConfigError`."""
    for f in dataclasses.fields(cfg):
        ch = f.metadata.get("choices")
        if ch is not None and getattr(cfg, f.name) not in ch:
            raise ConfigError(f"--{f.name.replace('_', '-')}={getattr(cfg, f.name)!r} is not one of {list(ch)}")
    check = getattr(cfg, "validate", None)
    if callable(check):
        check()


def fill_unset(cfg: Any, defaults: dict) -> None:
    """Set every field named in ``defaults`` that is still ``None`` (mode-dependent defaults, e.g. the
    fine-tuning lr), so the resolved value is what ``config.json`` records."""
    for name, value in defaults.items():
        if getattr(cfg, name) is None:
            setattr(cfg, name, value)


def require(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond``."""
    if not cond:
        raise ConfigError(message)


def config_to_dict(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def upgrade_dict(cls: Any, d: dict) -> dict:
    """``d`` brought up to date with ``cls``: field names renamed since it was saved (``cls.RENAMED``: old -> new,
    or old -> ``None`` for a field folded into another; a new name already in ``d`` wins), and options added
    since then at their defaults (a run saved before an option existed ran as its default does)."""
    renamed = getattr(cls, "RENAMED", {})
    out = {k: v for k, v in d.items() if k not in renamed}
    for old, new in renamed.items():
        if old in d and new is not None:
            out.setdefault(new, d[old])
    for f in dataclasses.fields(cls):
        if f.init and f.name not in out and f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return out


def config_from_dict(cls: Type[C], d: dict) -> C:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**_tuples(cls, {k: v for k, v in upgrade_dict(cls, d).items() if k in names}))


def save_config(cfg: Any, path: str | Path) -> None:
    atomic_write_text(Path(path), json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n")
