"""``python -m analysis.mini_select``: the old name of ``python -m study.mini.select`` (the validation-set choice
of the mini-study's OE length), kept so that users' commands keep working.  It runs that tool when executed and
imports nothing from ``study`` otherwise (``analysis`` sits below ``study``)."""
import runpy

if __name__ == "__main__":
    runpy.run_module("study.mini.select", run_name="__main__", alter_sys=True)
