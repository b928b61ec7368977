"""The loop a reader can follow, checked on the source (``docs/architecture.md``, "The training loop"): from
either trainer's CLI to its loss is three calls,

    main -> Engine.run -> Task.train_step -> the loss,

each a direct call a static walk finds (no hook looked up by name), so a layer added anywhere on the way fails
here; and the task interface holds no CUDA-graph hook (those live in ``oe_core/run/cuda_graph.py``)."""
from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
from torch import nn

from classifiers_oe import losses as classifier_losses
from classifiers_oe import train as classifier_train
from density_oe import losses as density_losses
from density_oe import train as density_train
from oe_core.run import engine, task


def _tree(fn) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(fn)))


def _calls(fn) -> list[ast.Call]:
    """Every call in ``fn``'s body, lambdas and nested blocks included."""
    return [n for n in ast.walk(_tree(fn)) if isinstance(n, ast.Call)]


def _attribute_calls(fn, attr: str) -> list[ast.Call]:
    return [c for c in _calls(fn) if isinstance(c.func, ast.Attribute) and c.func.attr == attr]


def _assigned_classes(fn, target: str) -> set[str]:
    """The classes whose instances ``fn`` assigns to ``self.<target>``."""
    out = set()
    for node in ast.walk(_tree(fn)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == target
                                                for t in node.targets):
            out |= {n.func.id for n in ast.walk(node.value) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return out


TRAINERS = {
    "classifier": (classifier_train, classifier_train.ClassifierTask, classifier_losses,
                   {"OELoss", "EnergyOELoss"}),
    "density": (density_train, density_train.DensityTask, density_losses, {"OEMarginLoss"}),
}


@pytest.mark.parametrize("trainer", TRAINERS)
def test_main_calls_the_engines_run(trainer):
    module, task_cls, _, _ = TRAINERS[trainer]
    runs = _attribute_calls(module.main, "run")
    assert len(runs) == 1
    made = runs[0].func.value                       # Engine(Task(cfg)).run()
    assert isinstance(made, ast.Call) and made.func.id == "Engine" and module.Engine is engine.Engine
    assert [a.func.id for a in made.args if isinstance(a, ast.Call)] == [task_cls.__name__]


def test_the_engines_run_calls_train_step_itself():
    """In the epochs phase of ``Engine.run``, through the step runner (eager or CUDA graph) it hands the call."""
    steps = _attribute_calls(engine.Engine.run, "train_step")
    assert len(steps) == 1 and isinstance(steps[0].func.value, ast.Name) and steps[0].func.value.id == "task"
    assert not [c for c in _calls(engine.Engine.run) if isinstance(c.func, ast.Name) and c.func.id == "getattr"]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_train_step_calls_the_loss(trainer):
    """``train_step`` calls the OE loss module (set up from the package's ``losses.py``) and the baseline loss
    directly."""
    _, task_cls, losses, oe_losses = TRAINERS[trainer]
    assert _assigned_classes(task_cls.setup, "criterion") == oe_losses
    for name in oe_losses:
        loss = getattr(losses, name)
        assert issubclass(loss, nn.Module) and loss.__module__ == losses.__name__
    assert len(_attribute_calls(task_cls.train_step, "criterion")) == 1
    baseline = {"classifier": "cross_entropy", "density": "mean"}[trainer]   # F.cross_entropy; mean bits/dim
    assert _attribute_calls(task_cls.train_step, baseline)


def test_the_task_interface_has_no_cuda_graph_hook():
    hooks = {n for n, _ in inspect.getmembers(task.Task) if not n.startswith("__")}
    assert not {h for h in hooks if "captur" in h or "graph" in h}, hooks
    assert "step_update" in hooks and "train_step" in hooks
