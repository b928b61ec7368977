"""``python -m study.mini``: run the mini-study (:mod:`study.mini.study`)."""
from oe_core.errors import cli_main

from .study import main

raise SystemExit(cli_main(main))
