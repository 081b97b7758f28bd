"""CPU features a compiled module needs, and whether this machine has them.

The features come from the target the code was compiled for (LLVM's view of its `mcpu`/`mattr`),
never from the host alone: a module built with `mcpu=sapphirerapids` on any machine needs AMX and
AVX-512 FP16, and running it on a CPU without them kills the process with SIGILL. The list is
recorded in the exported metadata; the runtime (native/runtime/src/runtime.cc, CpuinfoName) and the
engine refuse to run code whose features the host lacks.
"""

from __future__ import annotations

import os
import platform

# x86 features generated code can depend on: LLVM name -> /proc/cpuinfo flag, Intel's and AMD's
# (an unlisted one, such as FMA4 before, is neither recorded nor checked: code for mcpu=bdver4 ran
# and died with SIGILL). Only features that /proc/cpuinfo reports are listed, so a check never
# refuses a module for a name it cannot see.
# Keep in sync with CpuinfoName in native/runtime/src/runtime.cc.
X86_FEATURES = {
    "sse4.1": "sse4_1",
    "sse4.2": "sse4_2",
    "ssse3": "ssse3",
    "popcnt": "popcnt",
    "bmi": "bmi1",
    "bmi2": "bmi2",
    "lzcnt": "abm",
    "movbe": "movbe",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avxvnni": "avx_vnni",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512dq": "avx512dq",
    "avx512cd": "avx512cd",
    "avx512ifma": "avx512ifma",
    "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2",
    "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq",
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avx512fp16": "avx512_fp16",
    "amx-tile": "amx_tile",
    "amx-int8": "amx_int8",
    "amx-bf16": "amx_bf16",
    "amx-fp16": "amx_fp16",
    "avx512er": "avx512er",  # Xeon Phi
    "avx512pf": "avx512pf",
    "avx512vp2intersect": "avx512_vp2intersect",
    "gfni": "gfni",
    "vaes": "vaes",
    "vpclmulqdq": "vpclmulqdq",
    "pclmul": "pclmulqdq",
    "aes": "aes",
    "sha": "sha_ni",
    "adx": "adx",
    # AMD only: Bulldozer's four-operand FMA and XOP, TBM, and SSE4a (mcpu=bdver*, btver*, znver*)
    "fma4": "fma4",
    "xop": "xop",
    "tbm": "tbm",
    "sse4a": "sse4a",
}


def target_features(target) -> list[str]:
    """The checked features LLVM enables for `target` (a tvm Target of kind llvm), sorted."""
    from tvm.target import codegen

    if target.kind.name != "llvm":
        return []
    try:
        enabled = set(codegen.llvm_get_cpu_features(target))
    except Exception:  # an LLVM without this target: nothing can run here anyway (see target_arch)
        return []
    return sorted(f for f in X86_FEATURES if f in enabled)


def target_arch(target) -> str:
    """The target's architecture from its triple ("x86_64", "aarch64", ...); the host's when unset."""
    triple = str(target.attrs.get("mtriple", "") or "") if hasattr(target, "attrs") else ""
    return triple.split("-")[0] if triple else platform.machine()


def host_flags() -> set[str]:
    """This CPU's flags as /proc/cpuinfo names them; empty when unknown (then nothing is refused).

    TORCHTVM_HIDE_CPU_FEATURES (LLVM names, comma-separated) takes features away from what the
    engine believes this CPU has: for tests, which need "a CPU this machine does not have" on a
    machine whose CPU has everything (the code is never run here then; a server runs it)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    hidden = os.environ.get("TORCHTVM_HIDE_CPU_FEATURES")
    if flags and hidden:
        flags -= {X86_FEATURES.get(f.strip(), f.strip()) for f in hidden.split(",") if f.strip()}
    return flags


def missing_on_host(features) -> list[str]:
    """The features in `features` (LLVM names) this CPU lacks."""
    flags = host_flags()
    if not flags:
        return []
    return [f for f in features if f in X86_FEATURES and X86_FEATURES[f] not in flags]


def why_not_runnable(target, features) -> str | None:
    """A sentence saying why code for `target` cannot run on this machine, or None when it can."""
    arch = target_arch(target)
    host = platform.machine()
    if arch and host and arch.replace("amd64", "x86_64") != host.replace("amd64", "x86_64"):
        return f"The code was compiled for {arch} and this machine is {host}, so it cannot run here."
    missing = missing_on_host(features)
    if missing:
        return (
            f"The code was compiled for a CPU with {', '.join(missing)}, which this CPU lacks, "
            "so it was not run here (running it would kill the process with SIGILL)."
        )
    return None


def why_not_runnable_on(target, features, server: dict) -> str | None:
    """Like why_not_runnable, for a server that reported its CPU (remote/server.cpu_report: its
    architecture and the checked features it has, LLVM names): a sentence naming what it lacks."""
    arch = target_arch(target).replace("amd64", "x86_64")
    theirs = str(server.get("arch") or "").replace("amd64", "x86_64")
    name = server.get("name") or "the server"
    if arch and theirs and arch != theirs:
        return f"{name} is {theirs} and the code was compiled for {arch}."
    reported = set(server.get("features") or [])
    missing = [f for f in features if f in X86_FEATURES and f not in reported]
    if missing:
        return f"{name} ({server.get('cpu_model') or 'unknown CPU'}) lacks {', '.join(missing)}."
    return None
