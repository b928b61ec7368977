"""Native bf16 detection and the mini-study's --amp auto: bf16 exactly where the device computes it natively."""
from __future__ import annotations

import pytest
import torch

from study.mini.study import resolve_amp
from oe_core.run import device as device_mod


@pytest.mark.parametrize("flags, native", [(["avx2", "avx512f", "avx512_bf16"], True), (["amx_bf16", "amx_tile"], True),
                                           (["avx2", "avx512f", "avx512_vnni"], False), ([], False)])
def test_native_bf16_on_the_cpu_follows_the_cpu_flags(monkeypatch, flags, native):
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: flags)
    assert device_mod.native_bf16(torch.device("cpu")) is native
    assert resolve_amp("auto", "cpu") == ("bf16" if native else "none")
    assert resolve_amp("none", "cpu") == "none" and resolve_amp("bf16", "cpu") == "bf16"


def test_cpu_flags_and_model_are_read_from_this_machine():
    flags = device_mod.cpu_flags()
    assert isinstance(flags, list) and all(" " not in f for f in flags)
    assert device_mod.cpu_model()
