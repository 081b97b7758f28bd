"""A default CPU schedule for kernels nobody tuned.

Relax legalizes every op into plain TIR loop nests with no schedule: one thread, scalar code, the
reduction innermost. On CPU that is tens of times slower than PyTorch (ResNet-18 took seconds), and
DLight's CPU rules only cover GEMV and softmax-like reductions. This rule gives every remaining
block the two things that matter most and that are always legal:

- the innermost spatial axis is split to the vector width and moved inside the reduction loops,
  then vectorized (a conv computes a row of outputs per multiply-add, a dense layer a strip of
  output features);
- the remaining spatial axes are fused and parallelized across the target's cores.

Tuned kernels (MetaSchedule database) are left alone; anything the rule cannot schedule keeps its
plain loops, so it never makes a model fail to build.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import get_extent
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule
from tvm.target.codegen import llvm_get_vector_width


class ParallelVectorize(CPUScheduleRule):
    def apply(self, func, target, _tunable):  # noqa: D102  (ScheduleRule's signature)
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        try:
            sch = s_tir.Schedule(func)
            blocks = normalize_prim_func(sch)
            if not blocks:
                return None
            vector_bits = llvm_get_vector_width(target)
            vector_bits = vector_bits if vector_bits > 0 else 128
            changed = False
            for block in blocks:
                changed |= _schedule_block(sch, block, vector_bits)
            return sch if changed else None
        except Exception:  # a primitive refused: keep the plain loops rather than fail the build
            return None


def _schedule_block(sch, block, vector_bits: int) -> bool:
    kinds = block.dom_kind()
    n_spatial = len(kinds) - len(kinds.lstrip("S"))
    if n_spatial == 0 or "S" in kinds[n_spatial:] or "O" in kinds:
        return False  # scalar reductions, interleaved or opaque axes: leave as they are
    loops = block.get_loops()
    spatial, reduction = loops[:n_spatial], loops[n_spatial:]
    writes = sch.get(block.block_rv).writes
    bits = writes[0].source.dtype.bits if writes else 32
    lanes = max(vector_bits // max(bits, 8), 1)

    # Vectorize the innermost spatial axis by the largest power-of-two width that divides it
    # (no tail predicate to lower); symbolic extents are only parallelized.
    extent = get_extent(sch, spatial[-1])
    width = next((w for w in (lanes, lanes // 2, lanes // 4) if w >= 2 and isinstance(extent, int) and extent % w == 0), None)
    outer, vec = list(spatial), None
    if width is not None:
        if extent == width:
            outer, vec = spatial[:-1], spatial[-1]
        else:
            rest, vec = sch.split(spatial[-1], factors=[None, width])
            outer = spatial[:-1] + [rest]
        if reduction:
            sch.reorder(*outer, *reduction, vec)
    fused = None
    if outer:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        sch.parallel(fused)
    if vec is not None:
        if reduction and fused is not None:
            # Accumulate the vector of outputs in a local buffer (registers) across the reduction,
            # not in memory at every multiply-add; write it back once per parallel iteration.
            local = sch.cache_write(block.block_rv, 0, "local")
            sch.reverse_compute_at(local, fused)
            sch.vectorize(sch.get_loops(local)[-1])
        sch.vectorize(vec)
    return True
