"""TORCHTVM_MAX_CPU_ISA caps every place code is chosen by CPU features: the runtime's own kernels,
oneDNN and ATen, and the target TVM builds for. Each check runs in a fresh process, since all
three read the variable once."""

from __future__ import annotations

import json
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


# ---- CPUID masked (libtorchtvm_cpuid_mask.so): every library sees at most the cap's ISA ----------
MASK_UNAVAILABLE = None
try:
    from torchtvm.common import isa_cap as _isa_cap

    MASK_UNAVAILABLE = _isa_cap.cpuid_mask_unavailable()
except Exception as e:  # noqa: BLE001
    MASK_UNAVAILABLE = f"isa_cap failed to load: {e}"

# The cap variable is dropped before torch loads, so whatever picks AVX2 below picks it from CPUID
# (the mask read the variable when the process started).
MASKED_PROBE = r"""
import json, os
for k in ("TORCHTVM_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS"):
    os.environ.pop(k, None)
import torch
from torchtvm.common import isa_cap
got = isa_cap.describe()
print("RESULT" + json.dumps(got))
"""


@pytest.mark.skipif(MASK_UNAVAILABLE is not None or not HAS_AVX512, reason=f"CPUID cannot be masked here ({MASK_UNAVAILABLE})" if MASK_UNAVAILABLE else "this CPU has no AVX-512: nothing to mask")
def test_masked_cpuid_makes_every_library_pick_avx2_by_itself():
    from torchtvm.common import isa_cap

    env = isa_cap.masked_environment("avx2")
    out = subprocess.run([sys.executable, "-c", MASKED_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))[len("RESULT"):])
    assert got["cap"] is None  # the variable is gone: what follows is CPUID's doing
    assert got["torch"] == "avx2" and got["runtime_kernels"] == "avx2", got
    assert got["cpuid_mask"]["level"] == "avx2" and got["cpuid_mask"]["cpuid_answered"] > 0, got


@pytest.mark.skipif(MASK_UNAVAILABLE is not None, reason=f"CPUID cannot be masked here ({MASK_UNAVAILABLE})")
def test_masked_cpuid_leaves_other_crashes_to_the_program():
    """A real segmentation fault still reaches the program's handler (here Python's faulthandler)
    and still kills the process: the mask answers CPUID only."""
    from torchtvm.common import isa_cap

    env = isa_cap.masked_environment("avx2")
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == -11, (out.returncode, out.stderr[-1000:])
    assert "Segmentation fault" in out.stderr and "string_at" in out.stderr, out.stderr[-1000:]


def test_the_masked_environment_keeps_other_preloads_and_tunables():
    from torchtvm.common import isa_cap

    env = isa_cap.masked_environment("avx2", {"LD_PRELOAD": "/x/libfoo.so", "GLIBC_TUNABLES": "glibc.malloc.check=3:glibc.cpu.hwcaps=-AVX2"})
    assert env["LD_PRELOAD"] == f"{isa_cap.MASK_LIBRARY}:/x/libfoo.so" and env["TORCHTVM_MAX_CPU_ISA"] == "avx2"
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.check=3:glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD"
    assert "GLIBC_TUNABLES" not in isa_cap.masked_environment("avx512", {})
