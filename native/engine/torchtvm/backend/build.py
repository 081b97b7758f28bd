"""Relax -> native code: target resolution (this CPU's model and features), the fusing pipeline,
optional application of a tuning database, and export of the shared library."""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import dataclass

from torchtvm.backend import library, nan_semantics, recurrent, vector_math
from torchtvm.backend.cpu_schedule import ParallelVectorize
from torchtvm.common import cpu_features, isa_cap
from torchtvm.common.errors import EngineError

# Features a generated x86 kernel can depend on (recorded in exported metadata, checked on load).
_CHECKED_FEATURES = tuple(cpu_features.X86_FEATURES)


@dataclass
class TargetInfo:
    target: "object"  # tvm.target.Target
    kind: str
    mcpu: str | None
    features: list[str]

    def to_json(self) -> dict:
        return {"kind": self.kind, "mcpu": self.mcpu, "features": self.features, "target": json.loads(str(self.target)) if str(self.target).startswith("{") else str(self.target)}


def resolve_target(name: str = "llvm", num_cores: int | None = None) -> TargetInfo:
    """`llvm` means this CPU, with its model and features; `cuda` needs a GPU."""
    import tvm
    from tvm.target import Target, codegen

    num_cores = num_cores or os.cpu_count() or 1
    if name in ("llvm", "cpu", "native"):
        mcpu = codegen.llvm_get_system_cpu()
        capped = isa_cap.target_mattr()  # TORCHTVM_MAX_CPU_ISA: this CPU without what is above the cap
        target = Target({"kind": "llvm", "mcpu": mcpu, "num-cores": num_cores, **({"mattr": capped} if capped else {})})
        # LLVM gives the CPU model's features; a VM may hide some of them (AVX-512, SHA...): the
        # code for this machine must not use what its CPUID does not report.
        hidden = cpu_features.missing_on_host(cpu_features.target_features(target))
        if hidden:
            target = Target({"kind": "llvm", "mcpu": mcpu, "num-cores": num_cores, "mattr": list(capped or []) + [f"-{f}" for f in hidden]})
        return TargetInfo(target, "llvm", mcpu, cpu_features.target_features(target))
    if name == "cuda":
        if not tvm.cuda(0).exist:
            raise EngineError("no_gpu", "The cuda target needs an NVIDIA GPU and none was found; use --target llvm.")
        return TargetInfo(Target({"kind": "cuda", "arch": "sm_" + tvm.cuda(0).compute_version.replace(".", "")}, host={"kind": "llvm"}), "cuda", None, [])
    try:
        target = Target(json.loads(name) if name.startswith("{") else name)
    except Exception as e:
        raise EngineError("bad_target", f"Target {name!r} is not valid: use llvm, cuda, or a TVM target JSON object.", str(e)) from e
    # Features come from the target itself (its mcpu/mattr), so a module built for another CPU
    # records what it needs and is refused, not killed by SIGILL, where that is missing.
    mcpu = str(target.attrs["mcpu"]) if "mcpu" in target.attrs else None
    return TargetInfo(target, target.kind.name, mcpu, cpu_features.target_features(target))


def legalize(mod, info: TargetInfo):
    """Fuse and legalize (the `zero` pipeline): plain TIR kernels, what MetaSchedule tunes."""
    from tvm import relax

    nan_semantics.install()  # relu, clamp, max/min, max-pool keep NaN as PyTorch does
    vector_math.install()  # GELU's erf as arithmetic that vectorizes, not a libm call per element
    with info.target:  # type: ignore[attr-defined]  # a tvm Target (TargetInfo.target is typed object)
        mod = relax.transform.DecomposeOpsForInference()(mod)
        mod = relax.transform.CanonicalizeBindings()(mod)
        return relax.get_pipeline("zero")(mod)


def uses_library(info: TargetInfo) -> bool:
    return info.kind == "llvm" and library.library_available()


def prepare(mod, info: TargetInfo):
    """The graph every placement builds from, and the tuner extracts its tasks from: where the
    library kernels exist, BatchNorm folded and convolutions in NHWC (their layout), so that a
    tuned TVM kernel matches the op it replaces whichever placement keeps it."""

    return library.prepare(mod, convert_layout=True) if uses_library(info) else mod


def place(mod, info: TargetInfo, placement: str = "auto", keep_in_tvm=frozenset()):
    """Give conv2d / linear / matmul chains to the library kernels (oneDNN, MKL) where placement
    allows, except the ops in `keep_in_tvm`, each call with its default algorithm
    (library.use_algorithms switches them). Returns (module, offloads): the offloads say which ops
    run in the library."""

    if placement not in library.PLACEMENTS:
        raise EngineError("bad_placement", f"Placement {placement!r} is not one of {', '.join(library.PLACEMENTS)}.")
    if not uses_library(info):
        if placement == "library" and info.kind == "llvm":
            raise EngineError("no_library", "The library kernels are not available: libtorchtvm_runtime.so is not built. Run npm install (or native/runtime/build.py).")
        return _unrolled_rnns(mod), []
    mod = prepare(mod, info)
    if placement == "tvm":
        return _unrolled_rnns(mod), []
    return offload_prepared(mod, info, keep_in_tvm)


def offload_prepared(prepared, info: TargetInfo, keep_in_tvm=frozenset()):
    """place's library step, for a module `prepare` already made (placement auto or library)."""

    return library.offload(prepared, library.library_dtypes(info.features), keep_in_tvm=keep_in_tvm)


def _unrolled_rnns(mod):
    """LSTM / GRU layers (imported whole, as library calls) as TVM's own per-step ops."""

    try:
        return recurrent.expand(mod)
    except ValueError as e:
        raise EngineError("bad_placement", str(e)) from e


def lower(mod, info: TargetInfo, database=None):
    """Legalize a placed module; with a tuning database, apply its schedules; give the rest a
    default schedule."""
    from tvm import relax
    from tvm.s_tir import dlight as dl

    mod = legalize(mod, info)
    if database is not None:
        with info.target, database:  # type: ignore[attr-defined]  # a tvm Target (TargetInfo.target is typed object)
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    if info.kind == "llvm":
        # Kernels the database did not schedule get parallel, vectorized loops instead of plain ones.
        with info.target:  # type: ignore[attr-defined]  # a tvm Target (TargetInfo.target is typed object)
            mod = dl.ApplyDefaultSchedule(ParallelVectorize())(mod)
    elif info.kind == "cuda":
        # GPU kernels need thread bindings; DLight gives untuned ones a sane default.
        with info.target:  # type: ignore[attr-defined]  # a tvm Target (TargetInfo.target is typed object)
            mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
    return mod


def build(mod, info: TargetInfo, database=None, placement: str = "auto"):
    return build_placed(mod, info, database, placement)[0]


def build_placed(mod, info: TargetInfo, database=None, placement: str = "auto", keep_in_tvm=frozenset()):
    """Build; returns (executable, offloads)."""
    try:
        placed, offloads = place(mod, info, placement, keep_in_tvm)
    except EngineError:
        raise
    except Exception as e:
        raise _build_failed(info, e) from e
    return compile_placed(placed, info, database), offloads


def compile_placed(placed, info: TargetInfo, database=None, instrumented: bool = False):
    """Lower and compile a placed module (see place). The executable keeps the placed module
    (`placed`: the IR shares its constants) for mapping its kernel calls back to the model's ops
    on request (backend/kernel_calls.py), and the database (`database`), for building it again.

    On CPU the VM's functions are compiled to native code rather than interpreted as bytecode: 3-5
    us less per call on the depthwise net (15 library calls, ~95 us), measured interleaved against
    the bytecode build of the same placement; the runtime makes TVM's symbols global for it
    (runtime.cc ExposeTvmSymbols). Only the bytecode VM has the instrument hook that times and
    captures each kernel call: `instrumented` builds that, for diagnostics (instrumented_build)."""
    from tvm import relax

    exec_mode = "compiled" if info.kind == "llvm" and not instrumented else "bytecode"
    try:
        executable = relax.build(lower(placed, info, database), target=info.target, exec_mode=exec_mode)
    except Exception as e:
        raise _build_failed(info, e) from e
    executable.placed, executable.database, executable.instrumented = placed, database, exec_mode == "bytecode"
    return executable


def instrumented_build(executable, info: TargetInfo):
    """`executable` (from compile_placed) as the bytecode VM, whose instrument hook the kernel
    profile and the per-op comparison use: itself where it is one already."""
    if executable.instrumented:
        return executable
    return compile_placed(executable.placed, info, executable.database, instrumented=True)


def _build_failed(info: TargetInfo, e: Exception) -> EngineError:
    first = str(e).strip().splitlines()
    return EngineError("build_failed", f"TVM could not build the model for {info.kind}: {first[-1][:300] if first else type(e).__name__}.", str(e))


def export_library(executable, path: str) -> str:
    """Write the compiled module as a shared library (needs a C++ compiler), atomically."""
    tmp = f"{path}.tmp-{os.getpid()}.so"
    try:
        executable.export_library(tmp)
        os.replace(tmp, path)
    except Exception as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise _link_failed(path, e) from e
    return path


def _link_failed(path: str, e: Exception) -> EngineError:
    """Why writing the library failed, in the words that send the user to the fix."""
    text = str(e)
    last = text.strip().splitlines()[-1][:300] if text.strip() else type(e).__name__
    # Another architecture's object: the host's linker refuses it ("Relocations in generic ELF",
    # "file in wrong format", "incompatible target").
    foreign = re.search(r"Relocations in generic ELF \(EM: (\d+)\)|file in wrong format|incompatible with|error adding symbols: file format not recognized", text)
    if foreign:
        return EngineError(
            "cross_link",
            f"TVM compiled the model for another architecture, and this machine's linker cannot make a library of it ({last}). "
            "Building for another CPU architecture needs that architecture's cross toolchain (for aarch64: aarch64-linux-gnu-g++, "
            "passed to TVM as its cc); or compile on a machine of that architecture.",
            text,
        )
    if isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left on device" in text:
        return EngineError("disk_full", f"Could not write the compiled library to {path}: the disk is full. Free some disk space and compile again.", text)
    if "g++" in text and ("not found" in text or "No such file" in text):
        return EngineError("no_compiler", f"Could not link the compiled library: a C++ compiler (g++) is needed and none was found ({last}). Install g++ (apt-get install g++).", text)
    return EngineError("export_failed", f"Could not write the compiled library to {path}: {last}.", text)
