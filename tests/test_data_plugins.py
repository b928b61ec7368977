"""Dataset plugins: packages above oe_core add datasets without oe_core naming them -- by an entry point of the
group ``oe_suite.datasets`` (what ``pyproject.toml`` declares for the mini benchmark) or by ``$OE_DATASET_MODULES``
(a source tree that is not pip-installed).  Each case runs in a fresh interpreter, since the registry is filled once
per process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from oe_core.data.plugins import ENTRY_POINT_GROUP, MODULES_ENV

ROOT = Path(__file__).resolve().parents[1]
MINI_SETS = ["mini-faces", "mini-id", "mini-outliers", "mini-svhn", "mini-svhn-saturated", "mini-textures",
             "mini-val-outliers", "mini3-id", "mini4-id"]

# in the child: the installed distributions declare exactly the entry points in ENTRY_POINTS (none unless set), so
# the test does not depend on how (or whether) this tree is installed
_PATCH = """
import importlib.metadata as md, json, os
_eps, _real = [md.EntryPoint(n, v, g) for n, v, g in json.loads(os.environ["ENTRY_POINTS"])], md.entry_points
md.entry_points = lambda **kw: [e for e in _eps if e.group == kw["group"]] if kw.get("group") == "{}" else _real(**kw)
""".format(ENTRY_POINT_GROUP)


def _python(code: str, tmp_path: Path, modules: str | None = None,
            entry_points: str = "[]") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != MODULES_ENV}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]), ENTRY_POINTS=entry_points)
    if modules is not None:
        env[MODULES_ENV] = modules
    return subprocess.run([sys.executable, "-c", _PATCH + code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)


def _declared_entry_points() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"][ENTRY_POINT_GROUP]


def test_the_entry_point_in_pyproject_names_a_module_that_registers_the_mini_sets(tmp_path):
    declared = _declared_entry_points()
    assert list(declared) == ["mini"]
    eps = json.dumps([[name, value, ENTRY_POINT_GROUP] for name, value in declared.items()])
    r = _python("from oe_core.data import DATASETS, dataset_info\n"
                "import sys\n"
                "before = DATASETS.names('mini*', plugins=False)\n"     # nothing imported at import time
                "entry = dataset_info('mini3-id')\n"                    # an unknown name imports the plugins
                "print(json.dumps([before, DATASETS.names('mini*'), entry.num_classes, "
                "'classifiers_oe' in sys.modules]))", tmp_path, entry_points=eps)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [[], MINI_SETS, 3, False]


def test_the_env_var_route_and_where_plugins_come_from(tmp_path):
    """Without any plugin an unknown name says where plugins come from; then $OE_DATASET_MODULES (comma
    separated, read at each look-up) brings the mini sets and a plugin of the user's own."""
    (tmp_path / "toy_plugin.py").write_text(
        "from oe_core.data import register_dataset\n"
        "register_dataset('plugin-toy', splits=('test',), description='a plugin set', needs_root=False)"
        "(lambda root, split, transform, download: [1, 2])\n")
    r = _python("from oe_core.data import get_dataset, list_datasets\n"
                "try:\n"
                "    get_dataset('mini-id')\n"
                "except Exception as e:\n"
                "    print(type(e).__name__, e)\n"
                f"os.environ[{MODULES_ENV!r}] = ' toy_plugin , study.mini_benchmark,'\n"
                f"ds = get_dataset('mini-svhn', size=8, n=3, cache_dir={str(tmp_path / 'cache')!r})\n"
                "print(json.dumps([list_datasets('mini*'), len(ds), list(ds[0][0].shape), "
                "len(get_dataset('plugin-toy'))]))", tmp_path)
    assert r.returncode == 0, r.stderr
    error, listed = r.stdout.strip().splitlines()
    assert error.startswith("OEError unknown dataset 'mini-id'; known: blobs, cifar10")
    assert error.endswith(f"; other packages add datasets as plugins: entry points of group '{ENTRY_POINT_GROUP}' of "
                          f"installed packages (found: none) and the modules named in ${MODULES_ENV} (comma "
                          "separated; now unset)")
    assert json.loads(listed) == [MINI_SETS, 3, [3, 8, 8], 2]


@pytest.mark.slow
def test_a_trainer_run_as_a_module_names_a_plugin_that_fails_to_import(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('the plugin is broken here')\n")
    env = {**os.environ, MODULES_ENV: "study.mini_benchmark,broken_plugin",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    r = subprocess.run([sys.executable, "-m", "classifiers_oe.train", "--dataset", "mini-id", "--epochs", "1",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: dataset plugin 'broken_plugin' (module 'broken_plugin', from ${MODULES_ENV}) failed to import: "
        "RuntimeError: the plugin is broken here"]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_plugin_that_failed_gives_the_same_error_at_every_later_look_up(tmp_path, monkeypatch):
    """The plugin is not imported again (what it registered before failing is not "registered twice"): its import
    error comes back at every look-up of a name the registry does not hold; the registry's own sets stay
    available."""
    import oe_core.data.plugins as plugins
    from oe_core.data import dataset_info
    from oe_core.data.registry import DATASETS
    from oe_core.errors import ConfigError
    (tmp_path / "broken_plugin2.py").write_text("from oe_core.data import register_dataset\n"
                                                "register_dataset('half-set', splits=('test',), description='x')"
                                                "(lambda **kw: [])\n"
                                                "raise RuntimeError('broken after registering')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_imported", dict(plugins._imported))
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))
    monkeypatch.setenv(MODULES_ENV, "broken_plugin2")
    expected = (f"dataset plugin 'broken_plugin2' (module 'broken_plugin2', from ${MODULES_ENV}) failed to import: "
                "RuntimeError: broken after registering")
    assert dataset_info("cifar10").name == "cifar10"
    for name in ("nope", "nope-again"):
        with pytest.raises(ConfigError) as e:
            dataset_info(name)
        assert str(e.value) == expected
