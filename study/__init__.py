"""The study: the top floor of the suite.

It stands on the method packages (``classifiers_oe``, ``density_oe``), the analysis tools (``analysis``) and the
library (``oe_core``), and nothing below imports it.
"""
