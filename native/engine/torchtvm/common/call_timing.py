"""Each kernel call of a built model, timed through the Relax VM's instrument hook (a hook that only
reads the clock, a few microseconds on each side of a call): what the kernel profile
(backend/kernel_profile.py) and the per-op comparison (verify/per_op.py) both time."""

from __future__ import annotations

import time


def time_each_call(runner, inputs, repeat: int = 5) -> list[dict[tuple[str, int], float]]:
    """Each kernel call's time in ms, for `repeat` runs of `runner` (executor.TvmRunner) on
    `inputs` after one warm-up run: a dict per run, keyed by (symbol, its place among that
    symbol's calls). The hook only reads the clock; it is removed afterwards."""
    import tvm_ffi

    tvm_inputs = runner.to_tvm(inputs)
    main = runner.vm["main"]
    main(*tvm_inputs)
    runs: list[dict[tuple[str, int], float]] = []
    started: list[float] = []
    seen: dict[str, int] = {}
    current: dict[tuple[str, int], float] = {}

    def hook(func, symbol, before, ret, *args):
        if before:
            started.append(time.perf_counter())
        else:
            elapsed = (time.perf_counter() - started.pop()) * 1e3
            name = str(symbol)
            k = seen.get(name, 0)
            seen[name] = k + 1
            current[(name, k)] = elapsed
        return 0  # VMInstrumentReturnKind.kNoOp: run the call as usual

    runner.vm.set_instrument(tvm_ffi.convert(hook))
    try:
        for _ in range(repeat):
            seen.clear()
            current.clear()
            main(*tvm_inputs)
            runs.append(dict(current))
    finally:
        runner.vm.set_instrument(None)
    return runs
