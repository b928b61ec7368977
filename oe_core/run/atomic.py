"""Deprecated location: the atomic writers live in :mod:`oe_core.atomic` (a leaf module, so that
:mod:`oe_core.config` can use them without importing the run package)."""
from ..atomic import atomic_write_bytes, atomic_write_text, os  # noqa: F401  (os: tests patch os.fsync here)
