"""``python -m analysis.export RUN...``: give existing run folders the weights anyone can load.

Writes into each run folder what a finished run of either trainer now gets at its end (:mod:`oe_core.run.release`):
``model.safetensors`` (the scoring weights: EMA or trained, as ``config.json``'s ``eval_weights`` says) and the model
card ``README.md``.  ``RUN`` is a run folder (its latest good checkpoint) or a checkpoint file (the files go beside
it).  The training checkpoint is read safely and left as it is.  It lives in ``analysis`` because it serves both
trainers' kinds, as the evaluation does.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from classifiers_oe.card import model_card as classifier_card
from classifiers_oe.config import KIND as CLASSIFIER
from density_oe.card import model_card as density_card
from density_oe.config import KIND as DENSITY
from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import CheckpointError, cli_main
from oe_core.outputs import check_writable_folder
from oe_core.run import load_checkpoint
from oe_core.run.release import ModelCard, is_safetensors, write_release

# One card per package, as analysis.load_model keeps one loader per package.
CARDS: dict[str, Callable[[dict], ModelCard]] = {CLASSIFIER: classifier_card, DENSITY: density_card}


@dataclass
class ExportConfig:
    """Write model.safetensors (the run's scoring weights) and a model card README.md into existing run folders."""

    runs: list[str] = help_field([], "run folders (or checkpoint files) of classifiers_oe.train, density_oe.train "
                                     "or density_oe.port", positional=True)

    def validate(self) -> None:
        require(bool(self.runs), "give at least one run folder: python -m analysis.export RUN...")


def export_run(run: str | Path) -> Path:
    """Write ``model.safetensors`` and ``README.md`` for the run folder (or checkpoint file) ``run``."""
    run = Path(run).expanduser()
    if is_safetensors(run):
        raise CheckpointError(f"{str(run)!r} is already a safetensors file; give the run folder or its checkpoint")
    state = load_checkpoint(run)
    kind = state.get("kind")
    if kind not in CARDS:
        raise CheckpointError(f"checkpoint {str(run)!r} holds a model of kind {kind!r}; exportable kinds: "
                              f"{', '.join(CARDS)}")
    folder = run if run.is_dir() else run.parent
    check_writable_folder(folder, "RUN")
    return write_release(folder, state, CARDS[kind](state))


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(ExportConfig, argv, prog="python -m analysis.export")
    for run in cfg.runs:
        path = export_run(run)
        print(f"wrote {path} and {path.with_name('README.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
