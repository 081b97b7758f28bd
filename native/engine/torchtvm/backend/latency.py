"""Latency of the TorchScript model and the TVM module, in the same process and thread count.

`compare` times several runners in interleaved rounds after the same warm-up for each (until its
calls stop getting faster: TorchScript's profiling executor optimizes only after a few runs, and a
baseline timed during that phase made a build look 745x faster than it was), so that a burst of
load hits every runner alike. Latency is the p50 of the timed calls, reported with its spread."""

from __future__ import annotations

import statistics
import time

import torch


def summarize(samples_ms: list[float]) -> dict:
    s = sorted(samples_ms)

    def pct(p):
        k = (len(s) - 1) * p
        lo, hi = int(k), min(int(k) + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    return {"p50": pct(0.5), "p90": pct(0.9), "min": s[0], "mean": statistics.fmean(s), "runs": len(s)}


def repeats_for(one_run_ms: float, budget_ms: float = 15000.0, lo: int = 3, hi: int = 50) -> int:
    """As many runs as fit a time budget, at least `lo` so the median means something."""
    return int(max(lo, min(hi, budget_ms // max(one_run_ms, 1e-3))))


def time_torch(module, inputs: list[torch.Tensor], repeat: int | None = None, warmup: int = 2) -> dict:
    with torch.no_grad():
        t0 = time.perf_counter()
        module(*inputs)
        first = (time.perf_counter() - t0) * 1e3
        for _ in range(warmup):
            module(*inputs)
        samples = []
        for _ in range(repeat or repeats_for(first)):
            t0 = time.perf_counter()
            module(*inputs)
            samples.append((time.perf_counter() - t0) * 1e3)
    return summarize(samples)


def torch_runs(module, inputs: list[torch.Tensor], repeat: int) -> list[float]:
    """`repeat` timed calls of a torch module, in ms."""
    samples = []
    with torch.no_grad():
        for _ in range(repeat):
            t0 = time.perf_counter()
            module(*inputs)
            samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def frozen_torchscript(module):
    """The model as TorchScript frozen for inference (torch.jit.freeze + optimize_for_inference):
    the fastest way PyTorch itself runs it, the baseline a build must not be slower than.
    (module, None), or (None, why not) where it cannot be frozen."""
    if not isinstance(module, torch.jit.ScriptModule):
        return None, "not TorchScript"
    try:
        with torch.no_grad():
            return torch.jit.optimize_for_inference(torch.jit.freeze(module.eval())), None
    except Exception as e:  # a module freezing cannot take (an attribute it mutates, ...)
        return None, f"torch.jit.freeze failed: {str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__}"


def warm_up(f, warmup_ms: float = 300.0, max_ms: float = 5000.0) -> list[float]:
    """Calls `f(n)` (-> [ms per call]) until its calls stop getting faster: at least 6 calls and
    `warmup_ms`, and then until the last 3 calls' median is no more than 20% below the 3 before
    (TorchScript's profiling executor and oneDNN's first calls are slow for a while), within
    `max_ms`. Every runner of a comparison gets this same warm-up. Returns the warm-up's samples."""
    samples = f(6)
    while len(samples) < 4000 and sum(samples) < max_ms:
        settled = sum(samples) >= warmup_ms and statistics.median(samples[-3:]) >= 0.8 * statistics.median(samples[-6:-3])
        if settled:
            break
        samples += f(max(3, len(samples) // 2))
    return samples


def compare(timers: dict, budget_ms: float = 4000.0, rounds: int = 5, warmup_ms: float = 300.0) -> dict[str, dict]:
    """Times each of `timers` ({name: f(repeat) -> [ms per call]}) in `rounds` interleaved rounds
    after the same warm-up (warm_up); returns {name: summarize(...)}. The calls per round are sized
    so the whole comparison takes about `budget_ms`. A runner whose first round is still much slower
    than its later ones (it was not warm yet) has that round left out, as every runner would."""
    per_call: dict[str, float] = {}
    for name, f in timers.items():
        samples = warm_up(f, warmup_ms)
        per_call[name] = max(statistics.median(samples[-5:]), 1e-3)
    share = budget_ms / (rounds * max(len(timers), 1))
    calls = {name: int(max(3, min(200, share // ms))) for name, ms in per_call.items()}
    runs: dict[str, list[list[float]]] = {name: [] for name in timers}
    for r in range(rounds):
        order = list(timers)[r % len(timers):] + list(timers)[: r % len(timers)]  # rotated per round
        for name in order:
            runs[name].append(timers[name](calls[name]))
    return {name: summarize(_warm_rounds(v)) for name, v in runs.items()}


def _warm_rounds(rounds: list[list[float]]) -> list[float]:
    """The samples of every round, less leading rounds whose median is over 1.5x the median of the
    rounds after them (still warming up)."""
    while len(rounds) > 2 and statistics.median(rounds[0]) > 1.5 * statistics.median([x for r in rounds[1:] for x in r]):
        rounds = rounds[1:]
    return [x for r in rounds for x in r]


def time_tvm(runner, inputs: list[torch.Tensor], repeat: int | None = None) -> dict:
    first = runner.time_ms(inputs, repeat=1)[0]  # also warms up
    return summarize(runner.time_ms(inputs, repeat=repeat or repeats_for(first)))
