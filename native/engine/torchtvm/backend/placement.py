"""Placement: where each heavy op runs (a library kernel or TVM's kernel), decided by measuring
(`build_with_placement`), and the report of the result: where each op runs and how long it takes
in the built model, plus the metadata an export records about the library kernels it calls.

Library calls are timed inside the real model run (the runtime library times each call while the
engine asks it to), so a time includes the layout and cache context the op really runs in. TVM's
share is the rest of the run: the model's measured latency minus the library calls.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, replace

from tvm import relax

from torchtvm.backend import build as builder
from torchtvm.backend import depthwise_pointwise, kernel_choices, library, library_aten, measure
from torchtvm.backend.build import TargetInfo
from torchtvm.backend.executor import TvmRunner
from torchtvm.backend.library_attention import in_call_order
from torchtvm.backend.offload import Offload
from torchtvm.backend.relax_ir import shape_of
from torchtvm.common.errors import Cancelled
from torchtvm.common.progress import JobContext
from torchtvm.common.specs import SymDim, random_inputs

# The torch ops the library kernels call, per registered function (native/runtime/src/library_kernels.cc).
LIBRARY_OPS = {
    "torchtvm.conv2d": ["mkldnn::_convolution_pointwise_.binary", "mkldnn::_reorder_convolution_weight", "mkldnn_prepacked::conv2d_prepack"],
    "torchtvm.linear": ["aten::addmm.out", "aten::mm.out"],
    "torchtvm.matmul": ["aten::matmul.out"],
    "torchtvm.max_pool2d": ["aten::max_pool2d"],
    # library_attention.cc: torch's CPU kernels through their dispatch stubs, recorded by the public ops
    "torchtvm.attention": ["aten::_scaled_dot_product_flash_attention_for_cpu"],
    "torchtvm.layer_norm": ["aten::native_layer_norm"],
    "torchtvm.softmax": ["aten::_softmax.out"],
    # library_recurrent.cc: whole LSTM / GRU layers
    "torchtvm.lstm": ["aten::lstm.input"],
    "torchtvm.gru": ["aten::gru.input"],
    # library_squeeze_excite.cc: algorithm "torch" runs these
    "torchtvm.squeeze_excite": ["aten::mean.dim", "aten::addmm", "aten::mul.out"],
}

# Placement kinds whose chain TVM also runs as one fused kernel of its own, which an untuned build
# times as a third candidate (the other kinds' TVM kernels are timed against a tuning database).
TVM_CANDIDATE_KINDS = ("squeeze_excite",)

# The model ops each placement kind (Offload.kind) can come from, as the graph view names its nodes:
# TorchScript node kinds and torch.export's op schema names (frontend/graph.py), which share the
# "aten::name" form. Sent in the report (`source_ops`) so that the graph view can match a placed op
# that names no graph node (`node`) to the nodes of its family by order.
SOURCE_OPS: dict[str, list[str]] = {
    "conv2d": ["aten::_convolution", "aten::conv2d", "aten::convolution"],
    "depthwise_conv2d": ["aten::_convolution", "aten::conv2d", "aten::convolution"],
    "depthwise_pointwise": ["aten::_convolution", "aten::conv2d", "aten::convolution"],
    "grouped_conv2d": ["aten::_convolution", "aten::conv2d", "aten::convolution"],
    "linear": ["aten::linear", "aten::addmm"],
    "matmul": ["aten::matmul", "aten::bmm", "aten::mm"],
    "max_pool2d": ["aten::max_pool2d", "aten::max_pool2d_with_indices"],
    "lstm": ["aten::lstm"],
    "gru": ["aten::gru"],
    # ops PyTorch's kernel can take through torchtvm.aten (library_aten.py)
    "group_norm": ["aten::group_norm", "aten::native_group_norm"],
    "instance_norm": ["aten::instance_norm"],
    "avg_pool2d": ["aten::avg_pool2d"],
    "conv_transpose2d": ["aten::conv_transpose2d", "aten::_convolution", "aten::convolution"],
    "layer_norm": ["aten::layer_norm", "aten::native_layer_norm"],
    "softmax": ["aten::softmax", "aten::_softmax"],
    "log_softmax": ["aten::log_softmax", "aten::_log_softmax"],
    "mean": ["aten::mean", "aten::adaptive_avg_pool2d"],
    "sum": ["aten::sum"],
    "max": ["aten::max", "aten::amax"],
    "min": ["aten::min", "aten::amin"],
    "permute": ["aten::permute", "aten::transpose", "aten::t"],
    "take": ["aten::embedding", "aten::index_select"],
    "cumsum": ["aten::cumsum"],
    "squeeze_excite": ["aten::adaptive_avg_pool2d", "aten::mean"],
}


@dataclass
class Profile:
    calls_ms: list[float]  # median time of each library call, in call order
    funcs: list[str]  # the function each call ran, in call order
    run_ms: float  # median wall time of the profiled runs
    rest_ms: float  # median of (run - library calls): TVM's kernels and the VM


def profile_library(run, repeat: int = 10) -> Profile | None:
    """Times the library calls of `repeat` model runs (after one warm-up). `run()` runs the model
    once. None when the runtime library is not loaded."""
    import tvm_ffi

    start = tvm_ffi.get_global_func("torchtvm.library_profile_start", allow_missing=True)
    stop = tvm_ffi.get_global_func("torchtvm.library_profile_stop", allow_missing=True)
    if start is None or stop is None:
        return None
    run()
    per_call: list[list[float]] = []
    funcs: list[str] = []
    runs, rests = [], []
    for _ in range(repeat):
        start()
        t0 = time.perf_counter()
        run()
        wall = (time.perf_counter() - t0) * 1e3
        lines = [ln.split() for ln in str(stop()).splitlines() if ln.strip()]
        for i, (func, ns) in enumerate(lines):
            if i == len(per_call):
                per_call.append([])
                funcs.append(func)
            per_call[i].append(int(ns) / 1e6)
        runs.append(wall)
        rests.append(wall - sum(int(ns) for _, ns in lines) / 1e6)
    return Profile([statistics.median(v) for v in per_call], funcs, statistics.median(runs), max(statistics.median(rests), 0.0))


# ---- shapes as the user reads them ----------------------------------------------------------------

_INT_IMM = re.compile(r"T\.u?int(?:8|16|32|64)\((-?\d+)\)")
_NAME = re.compile(r"\b[A-Za-z_]\w*\b")
_TIMES_CONST = re.compile(r"([A-Za-z_]\w*) \* (\d+)\b")


def symbol_names(mod, specs) -> dict[str, str]:
    """TVM's names of the model's symbolic dims ("s67", torch.export's) -> the names the input specs
    give them ("batch"), matched by position in the Relax main function's inputs."""
    names: dict[str, str] = {}
    for v, d in _input_symbols(mod, specs):
        names.setdefault(str(v.name), d.name)
    return names


def _input_symbols(mod, specs):
    """(TVM's var, the spec's SymDim) for each symbolic dim of the Relax main function's inputs."""
    try:
        params = list(mod["main"].params)
    except Exception:
        return
    for param, spec in zip(params, specs or []):
        for v, d in zip(shape_of(param) or [], getattr(spec, "dims", ())):
            if isinstance(d, SymDim) and not hasattr(v, "value") and getattr(v, "name", None):
                yield v, d


def timing_probe(mod, specs):
    """module -> the module with the model's symbolic dims at the sizes its kernels are timed at
    (each symbol's sample size, at which a symbolic model is also tuned and its latency measured),
    or None for a static model. Where binding fails, the module as it is (its symbolic calls then
    keep their default, as before the binding existed)."""
    sizes: dict = {}
    for v, d in _input_symbols(mod, specs):
        sizes.setdefault(v, d.sample())
    if not sizes:
        return None
    bind = relax.transform.BindSymbolicVars(sizes)

    def probe(m):
        try:
            return bind(m)
        except Exception:  # noqa: BLE001 - timing is a refinement; the build itself does not bind
            return m

    return probe


def readable_dim(d, names: dict[str, str] | None = None):
    """A dim as the report shows it: a number, or a symbolic one in the user's words: TVM's
    "s67 * T.int64(16)" becomes "16·batch" (the symbol under its spec name, constants plain)."""
    if not isinstance(d, str):
        return d
    text = _INT_IMM.sub(r"\1", d)
    if names:
        text = _NAME.sub(lambda m: names.get(m.group(0), m.group(0)), text)
    text = _TIMES_CONST.sub(r"\2·\1", text)
    return text.replace(" * ", "·").replace(" // ", "/")


def report(placement: str, offloads: list, candidates: list, profile: Profile | None, total_ms: float | None, measured: dict | None = None, names: dict[str, str] | None = None) -> dict:
    """`offloads`: the ops given to the library (backend.library.Offload), in run order;
    `candidates`: ops the library could take but that stayed in TVM; `profile`: the library calls
    timed in model runs (same order as offloads); `total_ms`: the model's measured p50;
    `measured`: per-op placement's timings of each op alone (backend.measure.OpTiming by name);
    `names`: TVM's symbol names -> the input specs' (`symbol_names`), for readable shapes.

    Shares are of the profiled runs' median, so that the library and TVM shares add up; `tvm_ms`
    is the rest of those runs (TVM's kernels and the VM's own work). The profiled runs are slower
    than the measured p50 (profiling costs time, and they are fewer): so that the parts add up to
    the total shown beside them, each part is its share of the profiled run times `total_ms`
    (`parts_of` says so; `profiled_ms` keeps the profiled run's own median)."""
    # Calls are matched to ops by run order; a mismatch (which would misattribute times) leaves
    # the ops untimed instead.
    timed = profile if profile is not None and profile.funcs == [o.func for o in offloads] and profile.run_ms > 0 else None
    ops = []
    measured = measured or {}

    def op_json(o) -> dict:
        out = o.to_json()
        return {**out, "shape": [readable_dim(d, names) for d in out.get("shape") or []]}

    def alone(o) -> dict:
        t = measured.get(o.name)
        if not t:
            return {}
        ms = {"library": t.library_ms, "tvm": t.tvm_ms, "winograd": t.winograd_ms, **t.others_ms}
        return {"alone_ms": {k: v for k, v in ms.items() if v is not None}, **({"context_ms": dict(t.context_ms)} if t.context_ms else {})}

    # Parts as shares of the profiled run, scaled to the measured p50 (or the profiled run's own
    # median when nothing was measured).
    scale = total_ms / timed.run_ms if timed is not None and total_ms else 1.0
    for i, o in enumerate(offloads):
        share = timed.calls_ms[i] / timed.run_ms if timed is not None else None
        ms = share * timed.run_ms * scale if timed is not None and share is not None else None
        ops.append({**op_json(o), "where": "library", "ms": ms, "share": share, **alone(o)})
    for o in candidates:
        ops.append({**op_json(o), "where": "tvm", "ms": None, "share": None, **alone(o)})
    lib_ms: float | None
    tvm_ms: float | None
    if timed is not None:
        lib_share = min(1.0, sum(timed.calls_ms) / timed.run_ms)
        whole = total_ms if total_ms else timed.run_ms
        lib_ms, tvm_ms = lib_share * whole, (1.0 - lib_share) * whole
    else:
        lib_ms, tvm_ms = (0.0 if not offloads else None), (total_ms if not offloads else None)
    return {
        "mode": placement,
        "ops": ops,
        "library_ops": len(offloads),
        "tvm_ops": len(candidates),
        "library_ms": lib_ms,
        "tvm_ms": tvm_ms,
        "total_ms": total_ms,
        **({"profiled_ms": timed.run_ms, "parts_of": "p50" if total_ms else "profiled run"} if timed is not None else {}),
        "source_ops": {k: list(v) for k, v in SOURCE_OPS.items()},
    }


def export_metadata(offloads: list) -> dict | None:
    """What an exported model records about the library kernels it calls: the torch version and
    each op's schema, which the runtime compares with the torch it runs in before loading."""
    if not offloads:
        return None
    import torch
    import tvm_ffi

    schema = tvm_ffi.get_global_func("torchtvm.library_schema")
    funcs = sorted({o.func for o in offloads})
    ops = sorted({op for f in funcs for op in LIBRARY_OPS.get(f, [])} | {o.aten for o in offloads if o.aten})
    return {"torch": torch.__version__, "functions": funcs, "ops": {op: str(schema(op)) for op in ops}}


# ---- the policy ---------------------------------------------------------------------------------


def build_with_placement(mod, specs, info: TargetInfo, database, placement: str, ctx: JobContext):
    """Build with the placement asked for. `auto` builds the default: library kernels wherever they
    exist, each call with the algorithm that times fastest here (Winograd or oneDNN's direct
    convolution, the runtime's own loops or torch's kernels; each timed alone, in this process, on
    the model's weights, about a second for ResNet-18, cached across builds). With a tuning database, `auto` also places each op where it measures faster (the
    library kernel, or TVM's tuned kernel, timed alone in the model's layout), then times that
    build against the default and keeps the faster, so tuning never makes the model slower.
    Returns (executable, offloads, choice (how auto decided, or None), {op name: OpTiming})."""
    if not (placement == "auto" and builder.uses_library(info)):
        executable, offloads = builder.build_placed(mod, info, database, placement)
        return executable, offloads, None, {}
    # One prepared graph (BatchNorm folded, NHWC) for the default build and the per-op timing.
    prepared = builder.prepare(mod, info)
    placed, offloads = builder.offload_prepared(prepared, info)
    # A symbolic model's kernels are timed with its symbols bound to their sample sizes (a kernel of
    # symbolic shape has no size to time it at), and the choices, by op name, apply to every size.
    symbolic = timing_probe(prepared, specs)
    probe = symbolic or (lambda m: m)
    cache = kernel_choices.TimingCache()
    ctx.progress("build", "timing each library call's algorithms on this machine (Winograd, oneDNN, torch's kernels, the runtime's own)")
    lib_timed = measure.time_library_calls(probe(placed), offloads, cache=cache)
    ctx.check_cancelled()
    # Fused groups (squeeze-excite) that TVM can fuse into one kernel of its own: that kernel is a
    # candidate too, and where it times clearly faster than the library's best, the group stays in TVM.
    fused = [o.name for o in offloads if o.kind in TVM_CANDIDATE_KINDS and o.name in lib_timed]
    if fused:
        ctx.progress("build", f"timing {len(fused)} fused group(s) ({', '.join(sorted({o.kind for o in offloads if o.name in fused}))}) as TVM's own kernel")
        tvm_ms = measure.time_tvm_kernels(probe(prepared), info, library.library_dtypes(info.features), TVM_CANDIDATE_KINDS, cache=cache)
        lib_timed.update({n: replace(lib_timed[n], tvm_ms=tvm_ms[n]) for n in fused if n in tvm_ms})
        ctx.check_cancelled()
        in_tvm_default = frozenset(n for n in fused if lib_timed[n].where == "tvm")
        if in_tvm_default:
            placed, offloads = builder.offload_prepared(prepared, info, keep_in_tvm=in_tvm_default)
    algorithms = {name: t.algorithm for name, t in lib_timed.items() if t.algorithm}
    pristine = [replace(o) for o in offloads]  # before use_algorithms marks them: for the rebuilds below
    # The calls with their algorithms first: a transpose that a direct convolution then reads
    # through (the model's input) is gone before the ops left in TVM are timed.
    with_algorithms = library.use_algorithms(placed, offloads, algorithms)
    # PyTorch's kernel for the ops the runtime has none for (norms, pooling, softmax, reductions,
    # transposes...), against TVM's kernel (tuned where the database has it).
    aten_timed: dict = {}
    if library_aten.aten_calls(with_algorithms):
        ctx.progress("build", "timing the ops without a library kernel as TVM's kernel and as PyTorch's")
        aten_timed = measure.time_aten_ops(probe(with_algorithms), info, database, cache=cache)
        ctx.check_cancelled()
    if kernel_choices.busy() and cache.forget_added():
        ctx.log(f"the machine was busy (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) while the kernels were timed: their times choose this build's kernels but are not cached", "warn")
    cache.save(ctx.log)
    # PyTorch's kernel where clearly faster, or where TVM's kernel did not build.
    to_aten = frozenset(n for n, t in aten_timed.items() if t.tvm_ms is None or t.best_library_ms < t.tvm_ms * measure.MARGIN)
    # ... by the runtime's own kernel for the op where that timed clearly faster than PyTorch's.
    own_aten = frozenset(n for n in to_aten if aten_timed[n].algorithm == "own")

    def with_aten(module, module_offloads):
        """The ATen calls applied; offloads in call order."""
        module, aten_offloads = library_aten.offload(module, to_aten, own_aten)
        return module, in_call_order(module, list(module_offloads) + aten_offloads)

    def finish_placing(module, module_offloads, skip=frozenset()):
        """The library calls' algorithms and the ATen calls applied; offloads in call order."""
        return with_aten(library.use_algorithms(module, module_offloads, {n: a for n, a in algorithms.items() if n not in skip}), module_offloads)

    default_placed, offloads = with_aten(with_algorithms, offloads)
    # A depthwise convolution feeding only a 1x1 one: one call where that times clearly faster than
    # the two as placed.
    pairs = depthwise_pointwise.pairs(default_placed)
    pair_timed: dict = {}
    if pairs:
        ctx.progress("build", f"timing {len(pairs)} depthwise + 1x1 convolution pair(s) as one call and as two")
        timed_pairs = depthwise_pointwise.pairs(symbolic(default_placed)) if symbolic else pairs
        pair_timed = measure.time_depthwise_pointwise(timed_pairs, info, cache=cache)
        ctx.check_cancelled()
        cache.save(ctx.log)
    fuse = depthwise_pointwise.faster(pairs, pair_timed, measure.MARGIN)
    fused_pairs = {p.pointwise for p in fuse}
    default_placed, offloads = depthwise_pointwise.fuse(default_placed, offloads, fuse)
    # A pair's row in the report: its one call as the build makes it, and the two calls it replaces.
    pair_timings = {p.pointwise: measure.OpTiming(p.pointwise, pair_timed[p.pointwise]["fused"], None, others_ms={"separate": pair_timed[p.pointwise]["two"]}) for p in fuse}
    default_ex = builder.compile_placed(default_placed, info, database)

    def rebuild(algs: dict):
        """The default build again with other algorithms for some calls."""
        offs = [replace(o) for o in pristine]
        module, offs = with_aten(library.use_algorithms(placed, offs, algs), offs)
        module, offs = depthwise_pointwise.fuse(module, offs, [p for p in depthwise_pointwise.pairs(module) if p.pointwise in fused_pairs])
        return builder.compile_placed(module, info, database), offs

    default_ex, offloads, context_note = check_in_context(default_ex, offloads, lib_timed, rebuild, info, specs, ctx)
    algorithms = {name: t.algorithm for name, t in lib_timed.items() if t.algorithm}
    lib_note = _algorithms_note(lib_timed, offloads) + context_note + _aten_note(aten_timed, to_aten) + _fused_note(lib_timed, fused) + _pairs_note(pair_timed, len(fuse))
    timed = {**lib_timed, **aten_timed, **pair_timings}
    if database is None:
        return default_ex, offloads, ({"note": f"auto: {lib_note}"} if timed else None), timed

    ctx.progress("build", "timing each op as a library kernel and as TVM's tuned kernel")
    measured = measure.measure_ops(probe(prepared), info, database, library.library_dtypes(info.features))
    # A call with several algorithms keeps the times that chose its algorithm (all timed the same
    # way, so the default's choice and this report agree).
    measured = {**aten_timed, **{name: replace(lib_timed[name], tvm_ms=t.tvm_ms) if name in lib_timed else t for name, t in measured.items()}, **pair_timings}
    ctx.check_cancelled()
    in_tvm = frozenset(name for name, t in measured.items() if t.where == "tvm" and name not in aten_timed)
    if not in_tvm:
        note = f"auto: each of the {len(measured)} op(s) timed faster (or within 5%) as a library kernel than as a tuned TVM kernel; {lib_note}"
        return default_ex, offloads, {"note": note, "kept": False}, measured
    moved = f"{len(in_tvm)} op(s) in TVM's tuned kernels"
    ctx.progress("build", f"building with {moved}, to compare with the default")
    mixed, mixed_offloads = builder.offload_prepared(prepared, info, keep_in_tvm=in_tvm)
    mixed, mixed_offloads = finish_placing(mixed, mixed_offloads, skip=in_tvm)
    mixed, mixed_offloads = depthwise_pointwise.fuse(mixed, mixed_offloads, [p for p in depthwise_pointwise.pairs(mixed) if p.pointwise in fused_pairs])
    mixed_ex = builder.compile_placed(mixed, info, database)
    sample = random_inputs(specs)
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="torchtvm-placement-") as tmp:
        runners = {name: TvmRunner.from_library(builder.export_library(ex, os.path.join(tmp, f"{name}.so")), info.kind) for name, ex in (("library", default_ex), ("per_op", mixed_ex))}
        for _ in range(2):  # interleaved, so that a burst of load hits both
            for name, runner in runners.items():
                runs.setdefault(name, []).extend(runner.time_ms(sample, repeat=5))
    # The fastest run of each: on a busy machine the median measures the load (see measure.py).
    timings = {k: min(v) for k, v in runs.items()}
    ctx.check_cancelled()
    kept = timings["per_op"] < timings["library"]
    note = (
        f"auto {'kept' if kept else 'dropped'} the per-op placement ({moved}; {lib_note}): "
        f"{timings['per_op']:.3f} ms against {timings['library']:.3f} ms for the default (fastest of 10 interleaved runs)"
    )
    ctx.log(note)
    choice = {"note": note, "kept": kept, "per_op_ms": timings["per_op"], "library_ms": timings["library"]}
    return (mixed_ex, mixed_offloads, choice, measured) if kept else (default_ex, offloads, choice, measured)


# A library call that runs this much slower inside the model than alone (in a model whose weights
# do not fit in cache, they come from memory at each run; alone, they stay in cache) is timed there
# again with the algorithm that came next alone, if it takes at least CONTEXT_SHARE of the run.
CONTEXT_SLOWER = 1.25
CONTEXT_SHARE = 0.02


def _profile_in_context(calls: dict, rounds: int, budget_s: float = 2.0) -> dict[str, list[float]] | None:
    """{name: each library call's time inside model runs, in call order} for each `calls` entry
    (a function that runs one build once), profiled in interleaved rounds (the lowest of the
    rounds' medians: a burst of load hits one round). None where a call count or order differs."""
    first = next(iter(calls.values()))
    first()
    t0 = time.perf_counter()
    first()
    run_s = time.perf_counter() - t0
    repeat = max(2, min(10, int(budget_s / max(run_s, 1e-6) / rounds / len(calls))))
    profiles: dict[str, list[Profile]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            prof = profile_library(call, repeat=repeat)
            if prof is None:
                return None
            profiles[k].append(prof)
    out = {}
    for k, profs in profiles.items():
        if any(p.funcs != profs[0].funcs for p in profs):
            return None
        out[k] = [min(p.calls_ms[i] for p in profs) for i in range(len(profs[0].calls_ms))]
    return out


def check_in_context(default_ex, offloads: list, timed: dict, rebuild, info: TargetInfo, specs, ctx: JobContext):
    """`_check_in_context`; where it fails, the build keeps the algorithms timed alone, and says so
    (a check that only refines the build never fails it)."""
    try:
        return _check_in_context(default_ex, offloads, timed, rebuild, info, specs, ctx)
    except Cancelled:
        raise
    except Exception as e:  # noqa: BLE001
        for t in timed.values():
            t.context_ms = {}
        ctx.log(f"timing the library calls inside the model failed ({type(e).__name__}: {e}); the build keeps the algorithms they timed fastest alone", "warn")
        return default_ex, offloads, ""


def _check_in_context(default_ex, offloads: list, timed: dict, rebuild, info: TargetInfo, specs, ctx: JobContext):
    """Each library call with more than one algorithm, timed inside the built model's runs: where
    the chosen algorithm runs more than CONTEXT_SLOWER times slower there than alone and another
    timed alone faster than that, a second build runs those calls with their runner-up, both are
    profiled in interleaved rounds, and each call keeps the algorithm faster in the model (recorded
    in `timed[name].context_ms`, which `OpTiming.algorithm` then follows). `rebuild(algorithms)`
    returns (executable, offloads). Returns (executable, offloads, a note for the report)."""
    import tvm_ffi

    order = [o.name for o in offloads]
    # (a depthwise + 1x1 pair's call is named after its 1x1 convolution, whose times it does not have)
    checked = {o.name for o in offloads if o.name in timed and o.func in library.ALGORITHM_CODES and len(timed[o.name].alone_times) > 1}
    if not checked:
        return default_ex, offloads, ""
    ctx.progress("build", "timing the library calls inside the model")
    sample = random_inputs(specs)
    with tempfile.TemporaryDirectory(prefix="torchtvm-context-") as tmp:

        def caller(name: str, ex):
            runner = TvmRunner.from_library(builder.export_library(ex, os.path.join(tmp, f"{name}.so")), info.kind)
            args = runner.to_tvm(sample)
            return lambda: runner.vm["main"](*args)

        try:
            default_call = caller("default", default_ex)
            profiled = _profile_in_context({"default": default_call}, rounds=2)
            if profiled is None or len(profiled["default"]) != len(order):
                return default_ex, offloads, ""
            run_ms = sum(profiled["default"])
            runner_up: dict[str, str] = {}
            for name, in_model in zip(order, profiled["default"]):
                if name not in checked or in_model < CONTEXT_SHARE * run_ms:
                    continue
                t = timed[name]
                mine = t.algorithm or "library"
                alone = t.alone_times
                if in_model <= alone[mine] * CONTEXT_SLOWER:
                    continue
                others = {k: v for k, v in alone.items() if k != mine and v < in_model * measure.MARGIN}
                if others:
                    runner_up[name] = min(others, key=lambda k: others[k])
            if not runner_up:
                return default_ex, offloads, ""
            ctx.check_cancelled()
            ctx.progress("build", f"timing {len(runner_up)} library call(s) that ran slower in the model than alone with their next algorithm, in the model")
            chosen = {n: t.algorithm for n, t in timed.items() if t.algorithm}
            trial_ex, trial_offloads = rebuild({**chosen, **{n: ("" if a == "library" else a) for n, a in runner_up.items()}})
            both = _profile_in_context({"default": default_call, "trial": caller("trial", trial_ex)}, rounds=3)
        finally:
            # The packed weights of these loaded copies are not the built model's.
            tvm_ffi.get_global_func("torchtvm.library_clear_caches")()
    if both is None or len(both["trial"]) != len(order) or [o.name for o in trial_offloads] != order:
        return default_ex, offloads, ""
    was = {n: timed[n].algorithm or "library" for n in runner_up}
    for i, name in enumerate(order):
        if name in runner_up:
            timed[name].context_ms = {was[name]: both["default"][i], runner_up[name]: both["trial"][i]}
    switched = [n for n in runner_up if (timed[n].algorithm or "library") == runner_up[n]]
    # (each call's two times are in its row of the report, `context_ms`, named after its module)
    note = (f"; {len(runner_up)} call(s) ran more than {CONTEXT_SLOWER:g}x slower in the model than alone and were timed there with their next algorithm "
            f"too (their times: 'in the model'): {len(switched)} switched (more than 5% faster in the model)")
    ctx.log(note[2:])
    if not switched:
        return default_ex, offloads, note
    if len(switched) == len(runner_up):
        return trial_ex, trial_offloads, note
    final_ex, final_offloads = rebuild({n: t.algorithm for n, t in timed.items() if t.algorithm})
    return final_ex, final_offloads, note


_ALGORITHM_WORDS = {"winograd": "as Winograd", "onednn": "as oneDNN's convolution in place of the runtime's own loop", "torch": "as torch's own kernels (ATen's convolution, torch's LSTM/GRU, a squeeze-excite by ATen's ops)", "packed": "as MKL's packed GEMM", "small_gemm": "as the runtime's own GEMM", "direct": "as the runtime's own direct convolution", "own": "as the runtime's own attention"}


def _pairs_note(timed: dict, fused: int) -> str:
    if not timed:
        return ""
    return f"; {len(timed)} depthwise + 1x1 convolution pair(s) timed as one call and as two: {fused} run as one (more than 5% faster)"


def _fused_note(timed: dict, fused: list) -> str:
    in_tvm = sum(1 for n in fused if timed[n].where == "tvm")
    if not fused:
        return ""
    return f"; {len(fused)} fused group(s) timed as one library call and as TVM's own fused kernel: {in_tvm} run TVM's (more than 5% faster)"


def _aten_note(timed: dict, chosen: frozenset) -> str:
    if not timed:
        return ""
    own = sum(1 for n in chosen if timed[n].algorithm == "own")
    theirs = f"{len(chosen) - own} run PyTorch's" + (f", {own} the runtime's own" if own else "")
    return f"; {len(timed)} op(s) without a library kernel timed as TVM's kernel and as PyTorch's (and the runtime's own, where it has one): {theirs} (more than 5% faster), {len(timed) - len(chosen)} TVM's"


def _algorithms_note(timed: dict, offloads: list) -> str:
    """How the library calls' algorithms were chosen, in one sentence."""
    if not timed:
        return "no library call has another algorithm to time"
    chosen = [t.algorithm for t in timed.values() if t.algorithm]
    wino_ok = sum(1 for o in offloads if o.winograd_ok and o.name in timed)
    parts = [f"{chosen.count(a)} {_ALGORITHM_WORDS[a]}" + (f" (of {wino_ok} that can take it)" if a == "winograd" else "") for a in _ALGORITHM_WORDS if a in chosen]
    if not parts:
        parts = ["each kept its default"]
    return f"{len(timed)} library call(s) timed every way they can run, here: {'; '.join(parts)} (an algorithm replaces the default only when more than 5% faster)"


def placement_report(mod, info: TargetInfo, placement: str, offloads: list, runner: TvmRunner, specs, total_ms, measured: dict) -> tuple[dict, list]:
    """The report of a built model (`report`), with the library calls timed inside real runs.
    Returns (report, every op it lists: the offloads and the candidates left in TVM)."""
    sample = random_inputs(specs)
    tvm_inputs = runner.to_tvm(sample)
    profile = profile_library(lambda: runner.vm["main"](*tvm_inputs)) if offloads else None
    # The ops the library could take that stayed in TVM (all of them under --placement tvm).
    # (every op a call covers: a depthwise convolution inside a depthwise + 1x1 pair's call too)
    taken = {o.name for o in offloads} | {v for o in offloads for v in o.vars}
    candidates = [c for c in library.candidates(mod) if c.name not in taken] if info.kind == "llvm" else []
    # Ops PyTorch's kernel was timed for and TVM's kernel kept (they have times to show).
    candidates += [Offload(c.name, c.kind, library_aten.shape_json_of(c.out_ty), [], "", [c.name]) for c in library_aten.aten_calls(builder.prepare(mod, info)) if c.name in measured and c.name not in taken]
    return report(placement, offloads, candidates, profile, total_ms, measured, symbol_names(mod, specs)), list(offloads) + list(candidates)
