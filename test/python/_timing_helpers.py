"""Helpers shared by the placement tests that slow one of the runtime's own kernels on purpose."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def slowed(kernel: str, us: int = 20000):
    """The runtime's own kernel `kernel` spins `us` microseconds per call inside the block
    (torchtvm.debug_delay_kernel); 20 ms is far past what a descheduled thread adds on a busy
    2-core machine."""
    import tvm_ffi

    delay = tvm_ffi.get_global_func("torchtvm.debug_delay_kernel")
    delay(kernel, us)
    try:
        yield
    finally:
        delay(kernel, 0)


def timed_slow_and_fast(placed, offloads: list, kernel: str):
    """The single library call of `offloads` timed every way (measure.time_library_calls) with
    `kernel` slowed, then as it is: (slowed timing, normal timing)."""
    from torchtvm.backend import measure

    with slowed(kernel):
        (slow,) = measure.time_library_calls(placed, offloads, rounds=1, calls=3).values()
    (fast,) = measure.time_library_calls(placed, offloads, rounds=1, calls=3).values()
    return slow, fast
