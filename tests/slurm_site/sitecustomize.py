"""Test-only start-up hook for the SLURM tests: the fixture data root's md5s (as ``tests/fixture_site``) and, with
``OE_TEST_SLOW_RUN=FOLDER``, a trainer whose ``--out`` ends in FOLDER writes its step count to ``FOLDER/.slow_steps``
after every step and then waits until ``FOLDER/.slow_release`` exists (at most 5 minutes), so a test can send it
SIGTERM mid-run at a known step.  Waiting changes no result."""
import os
import sys
from pathlib import Path

exec(compile((Path(__file__).resolve().parents[1] / "fixture_site" / "sitecustomize.py").read_text(),
             "fixture_site/sitecustomize.py", "exec"))

_slow = os.environ.get("OE_TEST_SLOW_RUN", "")
if _slow and "--out" in sys.argv:
    _out = sys.argv[sys.argv.index("--out") + 1]
    if _out.rstrip("/").endswith(_slow):
        import time

        import oe_core.run.engine as _engine

        _orig = _engine.any_rank
        _count = [0]

        def _slow_any_rank(flag, device):
            _count[0] += 1
            (Path(_out) / ".slow_steps").write_text(f"{_count[0]}\n")
            end = time.time() + 300
            while not (Path(_out) / ".slow_release").exists() and time.time() < end:
                time.sleep(0.1)  # a signal's handler runs here (it sets the engine's stop flag)
            return _orig(flag, device)

        _engine.any_rank = _slow_any_rank

# with OE_TEST_RANKS_DIR, every DDP process leaves "rank{R}-of-{W}-{backend}" there when its process group starts
if os.environ.get("OE_TEST_RANKS_DIR") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
    import torch.distributed as _dist

    _init = _dist.init_process_group

    def _recording_init(*args, **kwargs):
        out = _init(*args, **kwargs)
        (Path(os.environ["OE_TEST_RANKS_DIR"]) / f"rank{_dist.get_rank()}-of-{_dist.get_world_size()}-"
                                                 f"{_dist.get_backend()}").write_text("")
        return out

    _dist.init_process_group = _recording_init
