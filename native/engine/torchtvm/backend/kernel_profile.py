"""Where a built model's time goes, per kernel: every call the Relax VM makes (TVM's fused kernels,
library calls, the VM's builtins), timed through the VM's instrument hook around each call.

The hook costs a Python call on each side of every kernel (a few microseconds), so the shares are
of the profiled run, not of the model's measured latency; the ranking is what this is for: naming
the kernels that cost a slow build its time."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from torchtvm.common.call_timing import time_each_call


@dataclass
class KernelTime:
    name: str  # the kernel's symbol: a fused TVM kernel, or a library function (torchtvm.conv2d)
    ms: float  # median time per model run, all its calls together
    calls: int  # calls per model run


def profile_kernels(runner, inputs, repeat: int = 5) -> list[KernelTime]:
    """Per-kernel times of `repeat` runs of `runner` (executor.TvmRunner) on `inputs` (after one
    warm-up run), all calls of a kernel together, slowest first."""
    runs = time_each_call(runner, inputs, repeat)
    per_run: list[dict[str, float]] = []
    for r in runs:
        totals: dict[str, float] = {}
        for (name, _), ms in r.items():
            totals[name] = totals.get(name, 0.0) + ms
        per_run.append(totals)
    counts: dict[str, int] = {}
    for name, _ in runs[0] if runs else {}:
        counts[name] = counts.get(name, 0) + 1
    names = {n for r in per_run for n in r}
    out = [KernelTime(n, statistics.median(r.get(n, 0.0) for r in per_run), counts.get(n, 0)) for n in names]
    # The VM's own builtins (allocation, shape checks) are not kernels of the model.
    out = [k for k in out if not k.name.startswith("vm.builtin.")]
    return sorted(out, key=lambda k: -k.ms)
