"""Latency of the TorchScript model and the TVM module, in the same process and thread count."""

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


def time_tvm(runner, inputs: list[torch.Tensor], repeat: int | None = None) -> dict:
    first = runner.time_ms(inputs, repeat=1)[0]  # also warms up
    return summarize(runner.time_ms(inputs, repeat=repeat or repeats_for(first)))
