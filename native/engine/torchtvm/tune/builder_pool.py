"""MetaSchedule's local builder with worker processes that live across batches.

TVM's LocalBuilder starts a fresh PopenPoolExecutor for every `build()` call (and one more for its
sanity check), to dodge a memory leak in long-lived workers. Each worker imports TVM and preloads
the tensor intrinsics before its first build: seconds per process, paid again for every batch, and
the tuner builds in chunks of `workers` so that a cancel is seen between them. On a small model
that start-up was most of a tune's wall time (26 s to build four trial kernels on two cores). Here
the pool is kept for the whole tune and each worker is replaced after `uses` builds instead, which
bounds the leak the same way.
"""

from __future__ import annotations

from typing import Callable

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

# Builds per worker process before it is replaced (TVM's leak grows with each build).
USES_PER_WORKER = 32


@derived_object
class PooledBuilder(PyBuilder):
    """LocalBuilder's build (TVM's default build and export, in worker processes, with a timeout),
    on one pool for the builder's lifetime. `close()` stops its processes."""

    def __init__(self, max_workers: int, timeout_sec: float, initializer: Callable[[], None] | None = None, uses: int = USES_PER_WORKER):
        super().__init__()
        self.timeout_sec = timeout_sec
        self.pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec, initializer=initializer, maximum_process_uses=uses)

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        results: list[BuilderResult] = []
        args = [(None, None, b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
        for r in self.pool.map_with_error_catching(lambda x: _worker_func(*x), args):
            if r.status == StatusKind.COMPLETE:
                results.append(BuilderResult(r.value, None))
            elif r.status == StatusKind.TIMEOUT:
                results.append(BuilderResult(None, f"LocalBuilder: Timeout, killed after {self.timeout_sec} seconds"))
            else:
                results.append(BuilderResult(None, "LocalBuilder: An exception occurred\n" + str(r.value)))
        return results

    def close(self) -> None:
        self.pool.shutdown(wait=False)
