"""``python -m analysis.mini_study``: the mini-study's old command name, kept so that users' commands keep
working.  Run as a module it runs the tool under its new name (the one string below); imported, it does nothing
(``analysis`` sits below the study's floor: ``tests/test_layers.py``)."""
import runpy

if __name__ == "__main__":
    runpy.run_module("study.mini", run_name="__main__", alter_sys=True)
