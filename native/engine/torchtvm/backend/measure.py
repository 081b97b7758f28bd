"""Per-operator placement, measured: each op the library could take is timed both ways (the library
kernel, and TVM's kernel with the tuning database's schedule) in the layout the model runs it in,
and goes where it is faster. A convolution the runtime's Winograd kernel can take is timed both
ways as a library call (time_winograd, untuned builds too) and uses Winograd where that is faster
than oneDNN's direct convolution.

For TVM's kernels, every candidate is a function of one module, built and exported once and
loaded like the model (TVM's loops on torch's thread pool), then timed in interleaved rounds so
that a burst of load hits both candidates of an op alike. (Timed alone, an op misses the cache
state its neighbours leave; the model-level comparison in pipeline.py catches a placement that
loses in context.)
"""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import dataclass

from torchtvm.backend import build as builder
from torchtvm.backend import library
from torchtvm.backend.executor import TvmRunner

# An alternative to the untuned default (TVM's kernel, or Winograd in place of the direct
# convolution) takes an op only when clearly faster: a tie keeps the default.
MARGIN = 0.95


@dataclass
class OpTiming:
    name: str
    library_ms: float
    tvm_ms: float | None  # None where TVM's kernel was not timed (an untuned build)
    winograd_ms: float | None = None  # the library call with the Winograd kernel, where it applies

    @property
    def winograd(self) -> bool:
        return self.winograd_ms is not None and self.winograd_ms < self.library_ms * MARGIN

    @property
    def where(self) -> str:
        best_library = self.winograd_ms if self.winograd_ms is not None and self.winograd else self.library_ms
        return "tvm" if self.tvm_ms is not None and self.tvm_ms < best_library * MARGIN else "library"


def time_winograd(placed, offloads: list, rounds: int = 5, calls: int = 4) -> dict[str, OpTiming]:
    """For an untuned build: each static-shaped convolution of `placed` (a module offload placed)
    that the Winograd kernel can take, its library call timed in this process both ways (oneDNN's
    direct convolution, Winograd) on the model's weights and random activations, in interleaved
    rounds. Only the kernels run (no TVM build): about a second for ResNet-18."""
    import time

    import torch
    import tvm_ffi

    conv = tvm_ffi.get_global_func("torchtvm.conv2d")
    found = library.library_calls(placed, "torchtvm.conv2d")
    cases = {}
    for o in offloads:
        call = found.get(o.name) if o.winograd_ok else None
        if call is None:
            continue
        *inputs, attrs = call.args[1].fields
        maybe_shapes = [library.static_shape(a) for a in inputs] + [library.static_shape(call)]
        shapes = [s for s in maybe_shapes if s is not None]
        if len(shapes) != len(maybe_shapes):
            continue  # a symbolic shape: no size to time it at
        consts = [library.constant_value(a) for a in inputs]  # the weights and bias; activations are random
        args = [c if c is not None else torch.randn(s) for c, s in zip(consts, shapes)]
        out = torch.empty(shapes[-1])
        base = tuple(int(x) for x in attrs.values)
        cases[o.name] = (args, out, {"lib": tvm_ffi.Shape(base), "wino": tvm_ffi.Shape(base + (1,))})
    times: dict[tuple, list[float]] = {}
    for args, out, variants in cases.values():
        for a in variants.values():
            conv(*args, a, out)  # the first call packs or transforms the weight
    for _ in range(rounds):
        for name, (args, out, variants) in cases.items():
            for kind, a in variants.items():
                for _ in range(calls):
                    t0 = time.perf_counter()
                    conv(*args, a, out)
                    times.setdefault((name, kind), []).append((time.perf_counter() - t0) * 1e3)
    # The weights packed here are this module's constants, not the built model's copies.
    tvm_ffi.get_global_func("torchtvm.library_clear_caches")()
    low = {k: statistics.quantiles(v, n=10)[0] if len(v) >= 10 else min(v) for k, v in times.items()}
    return {name: OpTiming(name, low[(name, "lib")], None, low[(name, "wino")]) for name in cases}


def measure_ops(prepared, info, database, dtypes: set[str], rounds: int = 3, calls: int = 10) -> dict[str, OpTiming]:
    """Times every static-shaped library candidate of `prepared` (a module after
    library.prepare) as a library call and as TVM's kernel. Returns {op name: OpTiming}; Winograd's
    times (time_winograd) are the caller's to add."""

    ops = library.isolate(prepared, dtypes)
    times = _time(ops, info, database, dtypes, ("tvm", "lib"), rounds, calls)
    return {op.name: OpTiming(op.name, times[f"lib_{i}"], times[f"tvm_{i}"]) for i, (op, _) in enumerate(ops)}


def task_library_ms(prepared, info, dtypes: set[str], task_hashes: list[str]) -> dict[int, float]:
    """What the tuner weighs a task against: for each tuning task (by structural hash) that is
    exactly one library candidate's kernel, that op's library call timed alone. A tuned record
    for such a task only matters if it comes near that time."""
    import tvm
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    ops = library.isolate(prepared, dtypes)
    index = {h: i for i, h in enumerate(task_hashes)}
    task_of_op = {}
    for k, (_, func) in enumerate(ops):
        tasks = list(ms.relax_integration.extract_tasks(builder.legalize(tvm.IRModule({"main": func}), info), info.target))
        if len(tasks) == 1 and str(tvm_ffi.structural_hash(tasks[0].dispatched[0])) in index:
            task_of_op[k] = index[str(tvm_ffi.structural_hash(tasks[0].dispatched[0]))]
    if not task_of_op:
        return {}
    times = _time([ops[k] for k in task_of_op], info, None, dtypes, ("lib",), rounds=2, calls=10)
    out: dict[int, float] = {}
    for j, task in enumerate(task_of_op.values()):
        out[task] = min(out.get(task, float("inf")), times[f"lib_{j}"])
    return out


def _time(ops: list, info, database, dtypes: set[str], kinds: tuple, rounds: int, calls: int) -> dict[str, float]:
    """Builds `kinds` of each op ("tvm": its own bindings, "lib": offloaded) into one module,
    exports and loads it like a model, and returns each function's median time in ms."""
    import tvm
    from tvm.relax.utils import copy_with_new_vars

    if not ops:
        return {}
    mod = tvm.IRModule()
    for i, (op, func) in enumerate(ops):
        if "tvm" in kinds:
            mod[f"tvm_{i}"] = copy_with_new_vars(func).with_attr("global_symbol", f"tvm_{i}")
        if "lib" in kinds:
            offloaded, _ = library.offload(tvm.IRModule({"main": copy_with_new_vars(func)}), dtypes)
            mod[f"lib_{i}"] = offloaded["main"].with_attr("global_symbol", f"lib_{i}")
    executable = tvm.compile(builder.lower(mod, info, database), target=info.target)
    with tempfile.TemporaryDirectory(prefix="torchtvm-ops-") as tmp:
        runner = TvmRunner.from_library(builder.export_library(executable, os.path.join(tmp, "ops.so")))
    times: dict[str, list[float]] = {}
    args = [runner.to_tvm([_sample(p) for p in func.params]) for _, func in ops]
    # One call per sample: TVM's evaluator with number > 1 reported library calls many times
    # slower than one call at a time does (seen here; the model's own timing uses number=1 too).
    for _ in range(rounds):
        for i in range(len(ops)):
            for kind in kinds:
                f = runner.vm.time_evaluator(f"{kind}_{i}", runner.dev, number=1, repeat=calls, min_repeat_ms=0)
                times.setdefault(f"{kind}_{i}", []).extend(r * 1e3 for r in f(*args[i]).results)
    # A low quantile, not the median: on a busy machine a parallel region can wait a whole
    # scheduler slice for a descheduled thread (library calls then read 8 or 16 ms), and what is
    # compared here is the kernels, not the load.
    return {k: statistics.quantiles(v, n=10)[0] if len(v) >= 10 else min(v) for k, v in times.items()}


def _sample(param):
    import torch

    shape = [int(d) for d in param.ty.shape.values]
    dtype = getattr(torch, str(param.ty.dtype))
    return torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
