"""The pclucas14/pixel-cnn-pp port's own code, loaded at run time for side-by-side measurement.

The port (github.com/pclucas14/pixel-cnn-pp, the code the OE paper's authors used) is never copied into this
project.  :func:`load_port` reads ``utils.py``, ``layers.py`` and ``model.py`` from a clone of it (by default
``<repository>/../shared/anchors/pixel-cnn-pp``, or ``--port-dir``) and executes them, unmodified except for the two
in-memory patches a current Python/PyTorch on a CPU needs:

* ``print e`` (Python 2, a SyntaxError on Python 3) becomes ``print(e)``;
* every ``.cuda()`` call is dropped (the loss builds its zeros tensor with ``.cuda()``); on a CUDA device they are
  kept (``drop_cuda=False``), as the port then runs as written.

The modules are executed under private names (``pclucas14_port.utils`` ...); while they run, their flat
``from utils import *`` / ``from layers import *`` imports are served from those modules, and ``sys.modules`` is
restored afterwards, so nothing named ``utils`` or ``layers`` leaks into the process.
"""
from __future__ import annotations

import re
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from oe_core.errors import ConfigError

FILES = ("utils", "layers", "model")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT_DIR = REPO_ROOT.parent / "shared" / "anchors" / "pixel-cnn-pp"
CARRIED_PORT_DIR = REPO_ROOT / ".port" / "pixel-cnn-pp"     # git-ignored; see resolve_port_dir
_PRINT_E = re.compile(r"\bprint e\b")
_CUDA = ".cuda()"


@dataclass(frozen=True)
class Port:
    """The executed port: its three modules and where they came from."""

    directory: Path
    utils: types.ModuleType
    layers: types.ModuleType
    model: types.ModuleType
    patches: dict[str, dict[str, int]]       # file -> {"print e": n, ".cuda()": n}

    @property
    def PixelCNN(self):  # noqa: N802  (the port's class name)
        return self.model.PixelCNN

    def loss(self, x, output):
        """The port's ``discretized_mix_logistic_loss(x, l)``: summed over the batch, in nats."""
        return self.utils.discretized_mix_logistic_loss(x, output)

    def describe(self) -> dict:
        return {"dir": str(self.directory), "patches": self.patches}


def resolve_port_dir(port_dir: str = "") -> Path:
    """``port_dir`` or the default location; one clear error if the port's files are not there."""
    if port_dir:
        path = Path(port_dir).expanduser()
    else:   # a git-ignored copy travels to a machine without ../shared (scripts/gpu_check.sh --stage-port)
        path = CARRIED_PORT_DIR if not DEFAULT_PORT_DIR.is_dir() and CARRIED_PORT_DIR.is_dir() else DEFAULT_PORT_DIR
    missing = [f"{name}.py" for name in FILES if not (path / f"{name}.py").is_file()]
    if missing:
        where = f"--port-dir {port_dir!r}" if port_dir else f"the default location {str(path)!r}"
        raise ConfigError(f"the pclucas14/pixel-cnn-pp port is not at {where} (missing {', '.join(missing)}); "
                          "clone https://github.com/pclucas14/pixel-cnn-pp and pass its folder as --port-dir")
    return path


def patch_source(text: str, drop_cuda: bool = True) -> tuple[str, dict[str, int]]:
    """The two CPU patches the port's README names, and how often each applied."""
    n_print = len(_PRINT_E.findall(text))
    n_cuda = text.count(_CUDA) if drop_cuda else 0
    text = _PRINT_E.sub("print(e)", text)
    return (text.replace(_CUDA, "") if drop_cuda else text), {"print e": n_print, ".cuda()": n_cuda}


def load_port(port_dir: str = "", drop_cuda: bool = True) -> Port:
    """Execute the port's ``utils``, ``layers`` and ``model`` (patched in memory) and return them."""
    path = resolve_port_dir(port_dir)
    modules: dict[str, types.ModuleType] = {}
    patches: dict[str, dict[str, int]] = {}
    saved = {name: sys.modules.get(name) for name in FILES}
    try:
        for name in FILES:
            source, patches[name] = patch_source((path / f"{name}.py").read_text(), drop_cuda)
            module = types.ModuleType(f"pclucas14_port.{name}")
            module.__file__ = str(path / f"{name}.py")
            try:
                code = compile(source, module.__file__, "exec")
            except SyntaxError as e:
                raise ConfigError(f"the port's {module.__file__} does not compile on this Python after the "
                                  f"two CPU patches: {e}") from None
            sys.modules[name] = module                 # serves the port's flat `from utils import *`
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(code, module.__dict__)
            modules[name] = module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return Port(path, modules["utils"], modules["layers"], modules["model"], patches)


def build_port_model(port: Port, nr_resnet: int, nr_filters: int, nr_logistic_mix: int) -> "object":
    """``port.model.PixelCNN(...)`` with the port's FutureWarning about the deprecated weight norm silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return port.PixelCNN(nr_resnet=nr_resnet, nr_filters=nr_filters, nr_logistic_mix=nr_logistic_mix,
                             input_channels=3)


def port_or_skip_reason(port_dir: str = "") -> tuple[Optional[Port], str]:
    """For tests: the loaded port, or ``(None, reason)`` when it is not available."""
    try:
        return load_port(port_dir), ""
    except ConfigError as e:
        return None, str(e)
