"""The placement report: where each heavy op runs (library kernel or TVM kernel) and how long it
takes in the built model, plus the metadata an export records about the library kernels it calls.

Library calls are timed inside the real model run (the runtime library times each call while the
engine asks it to), so a time includes the layout and cache context the op really runs in. TVM's
share is the rest of the run: the model's measured latency minus the library calls.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

# The torch ops the library kernels call, per registered function (native/runtime/src/library_kernels.cc).
LIBRARY_OPS = {
    "torchtvm.conv2d": ["mkldnn::_convolution_pointwise_.binary", "mkldnn::_reorder_convolution_weight", "mkldnn_prepacked::conv2d_prepack"],
    "torchtvm.linear": ["aten::addmm.out", "aten::mm.out"],
    "torchtvm.matmul": ["aten::matmul.out"],
    "torchtvm.max_pool2d": ["aten::max_pool2d"],
    # library_attention.cc: torch's CPU kernels through their dispatch stubs, recorded by the public ops
    "torchtvm.attention": ["aten::_scaled_dot_product_flash_attention_for_cpu"],
    "torchtvm.layer_norm": ["aten::native_layer_norm"],
    "torchtvm.softmax": ["aten::_softmax.out"],
    # library_recurrent.cc: whole LSTM / GRU layers
    "torchtvm.lstm": ["aten::lstm.input"],
    "torchtvm.gru": ["aten::gru.input"],
}


@dataclass
class Profile:
    calls_ms: list[float]  # median time of each library call, in call order
    funcs: list[str]  # the function each call ran, in call order
    run_ms: float  # median wall time of the profiled runs
    rest_ms: float  # median of (run - library calls): TVM's kernels and the VM


def profile_library(run, repeat: int = 10) -> Profile | None:
    """Times the library calls of `repeat` model runs (after one warm-up). `run()` runs the model
    once. None when the runtime library is not loaded."""
    import tvm_ffi

    start = tvm_ffi.get_global_func("torchtvm.library_profile_start", allow_missing=True)
    stop = tvm_ffi.get_global_func("torchtvm.library_profile_stop", allow_missing=True)
    if start is None or stop is None:
        return None
    run()
    per_call: list[list[float]] = []
    funcs: list[str] = []
    runs, rests = [], []
    for _ in range(repeat):
        start()
        t0 = time.perf_counter()
        run()
        wall = (time.perf_counter() - t0) * 1e3
        lines = [ln.split() for ln in str(stop()).splitlines() if ln.strip()]
        for i, (func, ns) in enumerate(lines):
            if i == len(per_call):
                per_call.append([])
                funcs.append(func)
            per_call[i].append(int(ns) / 1e6)
        runs.append(wall)
        rests.append(wall - sum(int(ns) for _, ns in lines) / 1e6)
    return Profile([statistics.median(v) for v in per_call], funcs, statistics.median(runs), max(statistics.median(rests), 0.0))


def report(placement: str, offloads: list, candidates: list, profile: Profile | None, total_ms: float | None, measured: dict | None = None) -> dict:
    """`offloads`: the ops given to the library (backend.library.Offload), in run order;
    `candidates`: ops the library could take but that stayed in TVM; `profile`: the library calls
    timed in model runs (same order as offloads); `total_ms`: the model's measured p50;
    `measured`: per-op placement's timings of each op alone (backend.measure.OpTiming by name).

    Shares are of the profiled runs' median, so that the library and TVM shares add up; `tvm_ms`
    is the rest of those runs (TVM's kernels and the VM's own work)."""
    # Calls are matched to ops by run order; a mismatch (which would misattribute times) leaves
    # the ops untimed instead.
    timed = profile is not None and profile.funcs == [o.func for o in offloads] and profile.run_ms > 0
    ops = []
    measured = measured or {}

    def alone(o) -> dict:
        t = measured.get(o.name)
        if not t:
            return {}
        ms = {"library": t.library_ms, "tvm": t.tvm_ms, "winograd": t.winograd_ms}
        return {"alone_ms": {k: v for k, v in ms.items() if v is not None}}

    for i, o in enumerate(offloads):
        ms = profile.calls_ms[i] if timed else None
        ops.append({**o.to_json(), "where": "library", "ms": ms, "share": ms / profile.run_ms if timed else None, **alone(o)})
    for o in candidates:
        ops.append({**o.to_json(), "where": "tvm", "ms": None, "share": None, **alone(o)})
    return {
        "mode": placement,
        "ops": ops,
        "library_ops": len(offloads),
        "tvm_ops": len(candidates),
        "library_ms": sum(profile.calls_ms) if timed else (0.0 if not offloads else None),
        "tvm_ms": profile.rest_ms if timed else (total_ms if not offloads else None),
        "total_ms": total_ms,
    }


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
