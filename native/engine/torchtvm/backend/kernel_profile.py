"""Where a built model's time goes, per kernel: every call the Relax VM makes (TVM's fused kernels,
library calls, the VM's builtins), timed through the VM's instrument hook around each call.

The hook costs a Python call on each side of every kernel (a few microseconds), so the shares are
of the profiled run, not of the model's measured latency; the ranking is what this is for: naming
the kernels that cost a slow build its time."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


@dataclass
class KernelTime:
    name: str  # the kernel's symbol: a fused TVM kernel, or a library function (torchtvm.conv2d)
    ms: float  # median time per model run, all its calls together
    calls: int  # calls per model run


def profile_kernels(runner, inputs, repeat: int = 5) -> list[KernelTime]:
    """Per-kernel times of `repeat` runs of `runner` (executor.TvmRunner) on `inputs` (after one
    warm-up run), slowest first. The hook is removed afterwards."""
    import tvm_ffi

    tvm_inputs = runner.to_tvm(inputs)
    main = runner.vm["main"]
    main(*tvm_inputs)
    runs: list[dict[str, float]] = []
    counts: dict[str, int] = {}
    started: list[float] = []
    current: dict[str, float] = {}

    def hook(func, symbol, before, ret, *args):
        if before:
            started.append(time.perf_counter())
        else:
            name = str(symbol)
            current[name] = current.get(name, 0.0) + (time.perf_counter() - started.pop()) * 1e3
            if len(runs) == 0:
                counts[name] = counts.get(name, 0) + 1
        return 0  # VMInstrumentReturnKind.kNoOp: run the call as usual

    runner.vm.set_instrument(tvm_ffi.convert(hook))
    try:
        for _ in range(repeat):
            current.clear()
            main(*tvm_inputs)
            runs.append(dict(current))
    finally:
        runner.vm.set_instrument(None)
    names = {n for r in runs for n in r}
    out = [KernelTime(n, statistics.median(r.get(n, 0.0) for r in runs), counts.get(n, 0)) for n in names]
    # The VM's own builtins (allocation, shape checks) are not kernels of the model.
    out = [k for k in out if not k.name.startswith("vm.builtin.")]
    return sorted(out, key=lambda k: -k.ms)
