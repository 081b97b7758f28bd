"""The tuner's estimate of the model's latency, defined once: the tune (search.SearchState), its
events and result, and the tuning-log reader (log.py) all compute it here, so the Tune page, the
CLI and the log reader show the same number for the same work dir.

Per task the build runs its best record when that beats the default schedule, else the default
schedule; and the op's library kernel where that is faster still (per-op placement). The estimate
is the sum over tasks of weight x that time. The library times and the default schedules are timed
once per work dir and target and kept in its sidecar, so the estimate moves only with tuned kernels.
Pure arithmetic: no TVM, no torch (the log reader answers beside a running job).
"""

from __future__ import annotations

import math
from typing import Sequence


def beats_default(ms: float | None, default: float | None) -> bool:
    """Whether a record timed `ms` is applied: only when it beats the default schedule."""
    return ms is not None and (default is None or ms < default)


def applied(best: float | None, default: float | None) -> float | None:
    """The kernel the build runs for a task: its best record if that beats the default schedule."""
    return best if beats_default(best, default) else default


def placed(best: float | None, default: float | None, library: float | None) -> float | None:
    """What the build is expected to run for a task: its applied kernel, or the library call where
    that is faster."""
    a = applied(best, default)
    return a if library is None or a is None else min(a, library)


def estimate(weights: Sequence[float], best: Sequence[float | None], defaults: Sequence[float | None], library: Sequence[float | None]) -> float | None:
    """Sum over tasks of weight x placed time; None while any task has no time at all, or when the
    sum is not a finite number (absurd weights)."""
    per_task = [placed(b, d, lib) for b, d, lib in zip(best, defaults, library)]
    if not per_task or any(v is None for v in per_task):
        return None
    try:
        total = sum(w * v for w, v in zip(weights, per_task) if v is not None)
    except OverflowError:
        return None
    return total if math.isfinite(total) else None
