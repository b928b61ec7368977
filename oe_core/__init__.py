"""Shared core of the OE study suite: datasets, metrics and run plumbing (docs/architecture.md).

Conventions used everywhere: OOD is the positive class and a *higher* score means *more anomalous*; images travel
as uint8 tensors (C, H, W) until they reach the device, where the model-specific scaling happens.
"""

__version__ = "0.1.0"
