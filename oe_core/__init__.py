"""Shared core of the OE study suite: datasets, metrics and run plumbing.

Conventions used everywhere in the suite:

* OOD is the positive class; every score is oriented so that a *higher* score
  means *more anomalous*.
* Images travel as uint8 tensors (C, H, W) until they reach the device; the
  model-specific scaling (mean/std normalisation for classifiers, [-1, 1] for
  density models) happens there.
"""

__version__ = "0.1.0"
