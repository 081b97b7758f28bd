"""The placement report: where each heavy op runs (library kernel or TVM kernel) and how long it
takes in the built model, plus the metadata an export records about the library kernels it calls.

Library calls are timed inside the real model run (the runtime library times each call while the
engine asks it to), so a time includes the layout and cache context the op really runs in. TVM's
share is the rest of the run: the model's measured latency minus the library calls.
"""

from __future__ import annotations

import statistics

# The torch ops the library kernels call, per registered function (native/runtime/src/library_kernels.cc).
LIBRARY_OPS = {
    "torchtvm.conv2d": ["mkldnn::_convolution_pointwise", "mkldnn::_convolution_pointwise_.binary", "mkldnn::_reorder_convolution_weight"],
    "torchtvm.linear": ["aten::addmm.out", "aten::mm.out"],
    "torchtvm.matmul": ["aten::matmul.out"],
}


def profile_library(run, repeat: int = 10) -> list[float]:
    """Median milliseconds of each library call of one model run, in call order. `run()` runs the
    model once; it is called `repeat` times (after one warm-up)."""
    import tvm_ffi

    start = tvm_ffi.get_global_func("torchtvm.library_profile_start", allow_missing=True)
    stop = tvm_ffi.get_global_func("torchtvm.library_profile_stop", allow_missing=True)
    if start is None or stop is None:
        return []
    run()
    per_call: list[list[float]] = []
    for _ in range(repeat):
        start()
        run()
        lines = [ln.split() for ln in str(stop()).splitlines() if ln.strip()]
        for i, (_, ns) in enumerate(lines):
            if i == len(per_call):
                per_call.append([])
            per_call[i].append(int(ns) / 1e6)
    return [statistics.median(v) for v in per_call]


def report(placement: str, offloads: list, candidates: list, lib_ms: list[float], total_ms: float | None) -> dict:
    """`offloads`: the ops given to the library (backend.library.Offload), in graph order;
    `candidates`: ops the library could take but that stayed in TVM; `lib_ms`: their measured call
    times (same order as offloads); `total_ms`: the model's p50."""
    ops = []
    timed = len(lib_ms) == len(offloads)
    for i, o in enumerate(offloads):
        ms = lib_ms[i] if timed else None
        ops.append({**o.to_json(), "where": "library", "ms": ms, "share": (ms / total_ms) if ms is not None and total_ms else None})
    for o in candidates:
        ops.append({**o.to_json(), "where": "tvm", "ms": None, "share": None})
    library_ms = sum(lib_ms) if timed else None
    out = {
        "mode": placement,
        "ops": ops,
        "library_ops": len(offloads),
        "tvm_ops": len(candidates),
        "library_ms": library_ms,
        "tvm_ms": max(total_ms - library_ms, 0.0) if library_ms is not None and total_ms else None,
        "total_ms": total_ms,
    }
    return out


def export_metadata(offloads: list) -> dict | None:
    """What an exported model records about the library kernels it calls: the torch version and
    each op's schema, which the runtime compares with the torch it runs in before loading."""
    if not offloads:
        return None
    import torch
    import tvm_ffi

    schema = tvm_ffi.get_global_func("torchtvm.library_schema")
    funcs = sorted({o.func for o in offloads})
    ops = sorted({op for f in funcs for op in LIBRARY_OPS.get(f, [])})
    return {"torch": torch.__version__, "functions": funcs, "ops": {op: str(schema(op)) for op in ops}}
