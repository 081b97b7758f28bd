"""TORCHTVM_MAX_CPU_ISA=avx2|avx512: build, run and time as if this CPU had at most that ISA.

One switch caps the three places code is chosen by CPU features, so that an AVX-512 machine can
build, test and benchmark what an AVX2 desktop runs:
- the runtime's own kernels (native/runtime/src/cpu_isa.cc reads the same variable);
- PyTorch's kernels: oneDNN (`ONEDNN_MAX_CPU_ISA`), MKL (`MKL_ENABLE_INSTRUCTIONS`) and ATen's
  vectorized loops (`ATEN_CPU_CAPABILITY`), which all read their variable once, at first use, so `apply_to_environment` runs when torchtvm
  is imported, before any kernel;
- TVM's code: the target of a build for this CPU drops the features above the cap (`mattr`).
A cap never adds features the CPU lacks.

Libraries with no switch (ONNX Runtime, OpenVINO's own kernels) read CPUID. `masked_environment`
gives a child process the environment that masks CPUID itself (libtorchtvm_cpuid_mask.so, where
the kernel lets CPUID fault), so every library in it sees a CPU with at most the cap's ISA:

    .venv/bin/python -m torchtvm.common.run_capped avx2 -- COMMAND [ARGS...]

runs COMMAND so (or, where CPUID cannot be masked, with the cap variable only, and says why).
"""

from __future__ import annotations

import ctypes
import os

from torchtvm.common import cpu_features
from torchtvm.common.errors import EngineError

ENV = "TORCHTVM_MAX_CPU_ISA"
LEVELS = ("avx2", "avx512")

# What each cap sets for torch's kernels, unless the user set those variables themselves.
_ONEDNN = {"avx2": "AVX2", "avx512": "AVX512_CORE_FP16"}  # no AMX above the avx512 cap
_ATEN = {"avx2": "avx2", "avx512": "avx512"}
_MKL = {"avx2": "AVX2", "avx512": "AVX512"}  # torch's MKL GEMMs (MKL_ENABLE_INSTRUCTIONS)
# LLVM features a build for this CPU turns off under each cap (turning off avx512f / amx-tile
# turns off every feature that depends on it). The AVX2-class VNNI and IFMA extensions are off
# too: the AVX2 desktops the cap stands for (Zen 2-4, Skylake) lack them.
_MATTR_OFF = {
    "avx2": ["-avx512f", "-amx-tile", "-avxvnni", "-avxifma", "-avxvnniint8", "-avxneconvert", "-avxvnniint16"],
    "avx512": ["-amx-tile"],
}


def cap() -> str | None:
    """The cap asked for, or None; an unknown value is refused with the fix."""
    value = os.environ.get(ENV, "").strip().lower()
    if not value:
        return None
    if value not in LEVELS:
        raise EngineError("bad_isa_cap", f"{ENV}={os.environ[ENV]!r} is not one of {', '.join(LEVELS)}: set it to one of those, or unset it to use every feature of this CPU.")
    return value


def apply_to_environment() -> None:
    """Sets oneDNN's and ATen's caps from ours (before torch runs a kernel). A bad value is left
    for `cap()` to report where a job can say so."""
    try:
        level = cap()
    except EngineError:
        return
    if level is None:
        return
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", _ONEDNN[level])
    os.environ.setdefault("ATEN_CPU_CAPABILITY", _ATEN[level])
    os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", _MKL[level])


def target_mattr() -> list[str]:
    """The `mattr` entries a build for this CPU adds under the cap (none without one)."""
    level = cap()
    return list(_MATTR_OFF[level]) if level else []


MASK_LIBRARY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", "libtorchtvm_cpuid_mask.so")
# glibc picks its string functions before any preloaded library runs: its own switch for those.
_GLIBC_HWCAPS_OFF = {"avx2": "-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD", "avx512": ""}


def cpuid_mask_unavailable() -> str | None:
    """Why CPUID cannot be masked here, or None when it can."""
    if not os.path.exists(MASK_LIBRARY):
        return f"{os.path.basename(MASK_LIBRARY)} is not built (native/runtime/build.py builds it)"
    if "cpuid_fault" not in cpu_features.host_flags():
        return "this kernel or hypervisor offers no CPUID faulting (no cpuid_fault in /proc/cpuinfo)"
    return None


def masked_environment(level: str, env: dict | None = None) -> dict:
    """`env` (default os.environ) for a child process that runs as on a CPU with at most `level`:
    the cap variable, and CPUID masked by LD_PRELOAD. Check `cpuid_mask_unavailable()` first."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {LEVELS}")
    out = dict(os.environ if env is None else env)
    out[ENV] = level
    preload = [p for p in out.get("LD_PRELOAD", "").split(":") if p and p != MASK_LIBRARY]
    out["LD_PRELOAD"] = ":".join([MASK_LIBRARY, *preload])
    if _GLIBC_HWCAPS_OFF[level]:
        tunables = [t for t in out.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.cpu.hwcaps=")]
        out["GLIBC_TUNABLES"] = ":".join([*tunables, "glibc.cpu.hwcaps=" + _GLIBC_HWCAPS_OFF[level]])
    return out


def cpuid_mask_in_effect() -> dict | None:
    """{"level": "avx2" | "avx512", "cpuid_answered": n} when this process runs with CPUID masked
    (n: the CPUID instructions answered so far), else None."""
    process = ctypes.CDLL(None)
    try:
        level = ctypes.c_int.in_dll(process, "torchtvm_cpuid_mask_level").value
        count = ctypes.c_ulong.in_dll(process, "torchtvm_cpuid_mask_count").value
    except ValueError:
        return None
    return {"level": LEVELS[level - 1], "cpuid_answered": count} if level else None


def describe() -> dict:
    """What runs under the cap, for build reports and the benchmark tables: the cap, the runtime
    kernels' ISA, torch's, and whether CPUID is masked."""
    import torch
    import tvm_ffi

    from torchtvm.common.runtime_library import load_library

    load_library()
    kernel_isa = tvm_ffi.get_global_func("torchtvm.kernel_isa", allow_missing=True)
    return {
        "cap": cap(),
        "runtime_kernels": str(kernel_isa()) if kernel_isa is not None else None,
        "torch": str(torch.backends.cpu.get_cpu_capability()).lower(),
        "cpuid_mask": cpuid_mask_in_effect(),
    }
