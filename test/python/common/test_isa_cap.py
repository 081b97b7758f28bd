"""TORCHTVM_MAX_CPU_ISA caps every place code is chosen by CPU features: the runtime's own kernels,
oneDNN and ATen, and the target TVM builds for. Each check runs in a fresh process, since all
three read the variable once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from torchtvm.common import cpu_features

HAS_AVX512 = "avx512f" in cpu_features.host_flags()

PROBE = r"""
import json, os, torch
import torchtvm
from torchtvm.backend.build import resolve_target
from torchtvm.common import isa_cap
x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
w = torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
torch.ops.mkldnn._convolution_pointwise(x, w, None, [1, 1], [1, 1], [1, 1], 1, "none", [], "")
print("RESULT" + json.dumps({**isa_cap.describe(), "features": resolve_target("llvm", 2).features}))
"""


def probe(cap: str | None) -> tuple[dict, str]:
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("TORCHTVM_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
    if cap:
        env["TORCHTVM_MAX_CPU_ISA"] = cap
    env["ONEDNN_VERBOSE"] = "1"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):]), out.stdout


def conv_implementation(log: str) -> str:
    """The kernel oneDNN ran the probe's convolution with (ONEDNN_VERBOSE's exec line)."""
    line = next(ln for ln in log.splitlines() if ",exec," in ln and ",convolution," in ln)
    return line.split(",")[6]


def test_the_avx2_cap_reaches_the_runtime_onednn_aten_and_tvm():
    got, log = probe("avx2")
    assert got["cap"] == "avx2" and got["runtime_kernels"] in ("avx2", "baseline") and got["torch"] in ("avx2", "default")
    assert not any(f.startswith("avx512") or f.startswith("amx") for f in got["features"])
    conv = conv_implementation(log)
    assert "avx512" not in conv and "amx" not in conv, conv


@pytest.mark.skipif(not HAS_AVX512, reason="this CPU has no AVX-512: the cap changes nothing here")
def test_without_a_cap_an_avx512_cpu_runs_avx512_code():
    got, log = probe(None)
    assert got["cap"] is None and got["runtime_kernels"] == "avx512" and got["torch"].startswith("avx512")
    assert "avx512f" in got["features"] and ("avx512" in conv_implementation(log) or "amx" in conv_implementation(log))


def test_an_unknown_cap_is_refused_with_the_fix():
    from torchtvm.common import isa_cap
    from torchtvm.common.errors import EngineError

    old = os.environ.get("TORCHTVM_MAX_CPU_ISA")
    os.environ["TORCHTVM_MAX_CPU_ISA"] = "sse9"
    try:
        with pytest.raises(EngineError, match="not one of avx2, avx512"):
            isa_cap.cap()
    finally:
        if old is None:
            del os.environ["TORCHTVM_MAX_CPU_ISA"]
        else:
            os.environ["TORCHTVM_MAX_CPU_ISA"] = old
