"""A default CPU schedule for kernels nobody tuned.

Relax legalizes every op into plain TIR loop nests with no schedule: one thread, scalar code, the
reduction innermost. On CPU that is tens of times slower than PyTorch (ResNet-18 took seconds), and
DLight's CPU rules only cover GEMV and softmax-like reductions. This rule gives every remaining
block what matters most, using only primitives that are always legal:

- the innermost spatial axis is split to the vector width and moved inside the reduction loops,
  then vectorized (a conv computes a row of outputs per multiply-add, a dense layer a strip of
  output features), accumulating in a local buffer (registers) rather than in memory;
- a few rows of an axis that reuses those vector loads (a conv's output channels, a matmul's rows)
  form a register tile, unrolled;
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

    # Vectorize the innermost spatial axis by the widest width up to the register's that divides it
    # (no tail predicate to lower; LLVM pads an odd width such as 7 to the register); symbolic
    # extents are only parallelized.
    extent = get_extent(sch, spatial[-1])
    width = next((w for w in range(lanes, 1, -1) if isinstance(extent, int) and extent % w == 0), None)
    outer, vec, tile = list(spatial), None, []
    if width is not None:
        # A register tile: a few rows of an axis along which the vector loads are reused (a conv's
        # output channels, a matmul's rows) share each load inside the reduction.
        reuse = _reuse_axis(sch, block, n_spatial) if reduction else None
        if extent == width:
            outer, vec = spatial[:-1], spatial[-1]
        else:
            rest, vec = sch.split(spatial[-1], factors=[None, width])
            outer = spatial[:-1] + [rest]
        if reuse is not None:
            rows_extent = get_extent(sch, spatial[reuse])
            # A symbolic extent (a batch) is split by 4 too: the tail is a predicate on the rows.
            rows = 2 if isinstance(rows_extent, int) and rows_extent % 4 else 4
            keep, inner = sch.split(spatial[reuse], factors=[None, rows])
            outer[reuse] = keep
            tile = [inner]
        if reduction:
            sch.reorder(*outer, *reduction, *tile, vec)
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
        for t in tile:
            sch.unroll(t)
        sch.vectorize(vec)
    return True


def _reuse_axis(sch, block, n_spatial: int) -> int | None:
    """Index of a spatial axis (not the innermost) that no vector-loaded input depends on, with a
    symbolic extent or a constant one divisible by 2; None when there is none."""
    stmt = sch.get(block.block_rv)
    written = {w.source.name for w in stmt.writes}
    iter_vars = [it.var for it in block.iters]

    def uses(region, var) -> bool:
        return any(v.same_as(var) for r in region.region for v in tirx.analysis.undefined_vars(r.min))

    vec_var = iter_vars[n_spatial - 1]
    vector_loads = [r for r in stmt.reads if r.source.name not in written and uses(r, vec_var)]
    if not vector_loads:
        return None
    for i in reversed(range(n_spatial - 1)):
        extent = get_extent(sch, block.iters[i].loop_rv)
        if (not isinstance(extent, int) or extent % 2 == 0) and not any(uses(r, iter_vars[i]) for r in vector_loads):
            return i
    return None
