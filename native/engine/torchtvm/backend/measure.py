"""Per-operator placement, measured: each op the library could take is timed both ways (the library
kernel, and TVM's kernel with the tuning database's schedule) in the layout the model runs it in,
and goes where it is faster.

Every candidate is a function of one module, built and exported once and loaded like the model
(TVM's loops on torch's thread pool), then timed in interleaved rounds so that a burst of load hits
both candidates of an op alike.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import dataclass

# TVM takes an op only when clearly faster: a tie keeps the library, the untuned default.
TVM_MARGIN = 0.95


@dataclass
class OpTiming:
    name: str
    library_ms: float
    tvm_ms: float

    @property
    def where(self) -> str:
        return "tvm" if self.tvm_ms < self.library_ms * TVM_MARGIN else "library"


def measure_ops(prepared, info, database, dtypes: set[str], rounds: int = 3, calls: int = 10) -> dict[str, OpTiming]:
    """Times every static-shaped library candidate of `prepared` (a module after
    library.prepare) as a library call and as TVM's kernel. Returns {op name: OpTiming}."""
    import tvm
    from tvm.relax.utils import copy_with_new_vars

    from .. import builder
    from ..executor import TvmRunner
    from . import library

    ops = library.isolate(prepared, dtypes)
    if not ops:
        return {}
    mod = tvm.IRModule()
    for i, (_, func) in enumerate(ops):
        mod[f"tvm_{i}"] = func.with_attr("global_symbol", f"tvm_{i}")
        offloaded, _ = library.offload(tvm.IRModule({"main": copy_with_new_vars(func)}), dtypes)
        mod[f"lib_{i}"] = offloaded["main"].with_attr("global_symbol", f"lib_{i}")
    executable = tvm.compile(builder.lower(mod, info, database), target=info.target)
    with tempfile.TemporaryDirectory(prefix="torchtvm-ops-") as tmp:
        runner = TvmRunner.from_library(builder.export_library(executable, os.path.join(tmp, "ops.so")))
    times: dict[str, list[float]] = {}
    args = [runner.to_tvm([_sample(p) for p in func.params]) for _, func in ops]
    # One call per sample: TVM's evaluator with number > 1 shows library calls run back to back
    # from C++ as many times slower than they are, in a model or alone.
    for _ in range(rounds):
        for i in range(len(ops)):
            for kind in ("tvm", "lib"):
                f = runner.vm.time_evaluator(f"{kind}_{i}", runner.dev, number=1, repeat=calls, min_repeat_ms=0)
                times.setdefault(f"{kind}_{i}", []).extend(r * 1e3 for r in f(*args[i]).results)
    return {op.name: OpTiming(op.name, statistics.median(times[f"lib_{i}"]), statistics.median(times[f"tvm_{i}"])) for i, (op, _) in enumerate(ops)}


def _sample(param):
    import torch

    shape = [int(d) for d in param.ty.shape.values]
    dtype = getattr(torch, str(param.ty.dtype))
    return torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
