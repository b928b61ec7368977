"""The mini-study: the whole OE study, offline, on the mini benchmark (:mod:`study.mini_benchmark`).

``python -m study.mini`` runs it end to end and writes its report (:mod:`.study`, :mod:`.report`; sizes in
:mod:`.presets`); ``python -m study.mini.select`` chooses the classifier's OE length on validation data only
(:mod:`.select`).  The old commands ``python -m analysis.mini_study`` and ``python -m analysis.mini_select`` run
the same tools.
"""
