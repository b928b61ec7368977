"""``python -m study.reproduce`` (``scripts/reproduce.sh``): the paper's run graph -- ``--plan``, ``--local``,
``--slurm``, ``--status`` -- and ``--run-node NODE``, which every ``scripts/<experiment>.sh`` runs.  The graph and
its runners live in :mod:`study.paper`."""
from oe_core.errors import cli_main
from study.paper.cli import main, parser

__all__ = ["main", "parser"]

if __name__ == "__main__":
    raise SystemExit(cli_main(main))
