"""``python -m analysis.mini_select``: the old command name of the mini-study's validation-set choice of its OE
length, kept so that users' commands keep working.  Run as a module it runs the tool under its new name (the one
string below); imported, it does nothing (``analysis`` sits below the study's floor: ``tests/test_layers.py``)."""
import runpy

if __name__ == "__main__":
    runpy.run_module("study.mini.select", run_name="__main__", alter_sys=True)
