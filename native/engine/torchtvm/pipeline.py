"""The compile job: load -> import -> build -> verify -> measure (-> export), with progress."""

from __future__ import annotations

import math
import os
import tempfile

import torch

from . import builder, cpu_features, latency
from .errors import EngineError
from .executor import TvmRunner
from .importer import import_torchscript, run_reference
from .jobs import JobContext, Timer
from .loader import is_exported, load_model, runnable
from .specs import SymDim, parse_specs, random_inputs
from .verify import compare, edge_cases, json_safe, summarize_edge


def set_threads(n: int | None) -> int:
    n = int(n or os.environ.get("TORCHTVM_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(n)
    # TVM reads this when its thread pool starts (first parallel kernel), so set it before building.
    os.environ["TVM_NUM_THREADS"] = str(n)
    return n


def compile_model(params: dict, ctx: JobContext) -> dict:
    path = params.get("model")
    # A .pt2's own dynamic dims and ranges are the default specs; TorchScript needs them given.
    specs = parse_specs(params.get("inputs")) if params.get("inputs") or not str(path or "").endswith(".pt2") else None
    out_dir = params.get("out_dir") or os.path.join(os.path.dirname(os.path.abspath(path or ".")), "torchtvm-build")
    threads = set_threads(params.get("threads"))
    measure = params.get("measure", True)

    ctx.progress("load", f"loading {path}")
    module = load_model(path)
    if specs is None:
        from .importer import program_specs

        specs = program_specs(module) if is_exported(module) else parse_specs(params.get("inputs"))
    ctx.check_cancelled()

    t = Timer()
    # A tune job hands over the module it imported (`_imported`), or a work dir that keeps imports
    # (`_import_cache`, see import_cache): then nothing is imported again.
    imported = params.get("_imported")
    cache = None
    if imported is None and params.get("_import_cache") and isinstance(path, str):
        from .import_cache import ImportCache

        cache = ImportCache(params["_import_cache"], path, specs)
        imported = cache.load_imported()
        if imported is not None:
            ctx.log(f"Reused the imported model kept in {cache.dir}.")
    try:
        if imported is None:
            ctx.progress("import", "importing TorchScript into TVM Relax")
            imported = import_torchscript(module, specs, progress=lambda m: ctx.progress("import", m))
            if cache is not None:
                cache.save_imported(imported, ctx.log)
    except EngineError as e:
        if e.code not in ("unsupported_op", "import_failed"):
            raise
        from . import partition

        # Fallback is the default (the parts that import compile, the rest stays in TorchScript);
        # strict asks for all or nothing. A .pt2 has no TorchScript graph to fall back to.
        if params.get("strict") or params.get("fallback") is False or is_exported(module):
            raise EngineError(e.code, e.message + ("" if is_exported(module) else partition.fallback_hint()), e.detail) from e
        try:
            return partition.compile_fallback(params, ctx, module, specs, e, threads, verification_shapes(specs), import_s=t.seconds)
        except EngineError as fe:
            if fe.code != "fallback_nothing":
                raise
            # Nothing around the unsupported part compiles either: the import error is the news.
            raise EngineError(e.code, f"{e.message} Nothing around it could be compiled either: {fe.message}", e.detail) from fe
    import_s = t.seconds
    ctx.check_cancelled()

    t = Timer()
    info = builder.resolve_target(params.get("target") or "llvm", threads)
    ctx.progress("build", f"building for {info.kind} ({info.mcpu or 'default cpu'})")
    database = params.get("_database")  # set by the tune job
    placement = params.get("placement") or "auto"
    executable, offloads, choice, measured = _build_with_placement(imported, specs, info, database, placement, ctx)
    os.makedirs(out_dir, exist_ok=True)
    lib_path = builder.export_library(executable, os.path.join(out_dir, "model.so"))
    build_s = t.seconds
    ctx.check_cancelled()

    # Never run code this machine cannot execute (a target with CPU features the host lacks would
    # kill the engine with SIGILL): verification and latency are skipped with the reason instead.
    not_runnable = cpu_features.why_not_runnable(info.target, info.features) if info.kind == "llvm" else None
    runner = None
    if not_runnable:
        verification = {"ok": False, "skipped": True, "outputs": [], "reason": not_runnable + " Verify it on a machine with that CPU."}
        ctx.log(verification["reason"], "warning")
        measure = False
    else:
        ctx.progress("verify", "comparing TVM with PyTorch on random inputs")
        runner = TvmRunner.from_library(lib_path, info.kind)
        verification = verify_runner(module, runner, specs, verification_shapes(specs))
        if params.get("edge_values", True):
            ctx.progress("verify", "comparing TVM with PyTorch on edge values (NaN, inf, -0.0, huge, tiny, zeros)")
            verification["edge_values"] = verify_edge_values(module, runner, specs)
    ctx.check_cancelled()

    result = {
        "model": path,
        "inputs": [s.to_json() for s in specs],
        "target": info.to_json(),
        "num_outputs": imported.num_outputs,
        "timings_s": {"import": import_s, "build": build_s},
        "verification": verification,
        "threads": threads,
        "files": {"library": lib_path},
    }
    if measure:
        ctx.progress("measure", "measuring latency (PyTorch)", 0.0)
        sample = random_inputs(specs)
        torch_lat = latency.time_torch(runnable(module), sample)
        ctx.check_cancelled()
        ctx.progress("measure", "measuring latency (TVM)", 0.5)
        tvm_lat = latency.time_tvm(runner, sample)
        result["latency_ms"] = {"torch": torch_lat, "tvm": tvm_lat, "ratio": tvm_lat["p50"] / torch_lat["p50"] if torch_lat["p50"] > 0 else None}
    if runner is not None:
        result["placement"] = _placement_report(imported, info, placement, offloads, runner, specs, result.get("latency_ms", {}).get("tvm", {}).get("p50"), measured)
        if choice:
            result["placement"]["note"] = choice.pop("note")
            if choice:
                result["placement"]["per_op"] = choice
    # Everything reported must serialise (no NaN/inf numbers in JSON) before any file is written,
    # so no failure can come after the export.
    result["verification"] = verification = json_safe(verification)
    if "latency_ms" in result:
        result["latency_ms"] = json_safe(result["latency_ms"])
    export_path = params.get("export_path")
    if export_path:
        if not verification.get("ok", True) and not params.get("export_unverified"):
            # A mismatch blocks a silent export; the caller can insist with export_unverified.
            why = verification["reason"] if verification.get("skipped") else "TVM's outputs differ from PyTorch's beyond tolerance"
            result["export_skipped"] = f"Not exported: {why} (pass export_unverified to export anyway)."
            ctx.log(result["export_skipped"], "warning")
        else:
            from .export import save_exported

            ctx.progress("export", f"writing the deployable model to {export_path}")
            result["files"]["exported"] = save_exported(export_path, lib_path, info, specs, imported.num_outputs, {"source_model": path, "verification_ok": bool(verification.get("ok", True)), **_library_metadata(offloads)})
    result["_executable"] = executable
    result["_info"] = info
    return result


def _build_with_placement(imported, specs, info, database, placement: str, ctx):
    """Build with the placement asked for. `auto` builds the default: library kernels wherever they
    exist, and Winograd for the 3x3 convolutions where it times faster than oneDNN's direct
    convolution (each timed alone, in this process, on the model's weights: about a second for
    ResNet-18). With a tuning database, `auto` also places each op where it measures faster (the
    library kernel, or TVM's tuned kernel, timed alone in the model's layout), then times that
    build against the default and keeps the faster, so tuning never makes the model slower.
    Returns (executable, offloads, choice (how auto decided, or None), {op name: OpTiming})."""
    if not (placement == "auto" and builder.uses_library(info)):
        executable, offloads = builder.build_placed(imported.mod, info, database, placement)
        return executable, offloads, None, {}
    from .backend import library, measure

    # One prepared graph (BatchNorm folded, NHWC) for the default build and the per-op timing.
    prepared = builder.prepare(imported.mod, info)
    placed, offloads = builder.offload_prepared(prepared, info)
    wino_timed = {}
    if any(o.winograd_ok for o in offloads):
        ctx.progress("build", "timing the 3x3 convolutions as Winograd and as oneDNN's direct convolution")
        wino_timed = measure.time_winograd(placed, offloads)
        ctx.check_cancelled()
    winograd = frozenset(name for name, t in wino_timed.items() if t.winograd)
    default_ex = builder.compile_placed(library.use_winograd(placed, offloads, winograd), info, database)
    wino_note = f"{len(winograd)} of {len(wino_timed)} 3x3 convolution(s) as Winograd, where it timed more than 5% faster than oneDNN's direct convolution"
    if database is None:
        return default_ex, offloads, ({"note": f"auto: {wino_note}"} if wino_timed else None), wino_timed

    ctx.progress("build", "timing each op as a library kernel and as TVM's tuned kernel")
    measured = measure.measure_ops(prepared, info, database, library.library_dtypes(info.features))
    # A convolution Winograd can take keeps the times that chose its algorithm (both candidates timed
    # the same way, so the default's choice and this report agree).
    measured = {name: measure.OpTiming(name, wino_timed[name].library_ms, t.tvm_ms, wino_timed[name].winograd_ms) if name in wino_timed else t for name, t in measured.items()}
    ctx.check_cancelled()
    in_tvm = frozenset(name for name, t in measured.items() if t.where == "tvm")
    if not in_tvm:
        note = f"auto: each of the {len(measured)} op(s) timed faster (or within 5%) as a library kernel than as a tuned TVM kernel; {wino_note}"
        return default_ex, offloads, {"note": note, "kept": False}, measured
    moved = f"{len(in_tvm)} op(s) in TVM's tuned kernels"
    ctx.progress("build", f"building with {moved}, to compare with the default")
    mixed_ex, mixed_offloads = builder.build_placed(imported.mod, info, database, "library", keep_in_tvm=in_tvm, winograd=winograd)
    sample = random_inputs(specs)
    timings = {}
    with tempfile.TemporaryDirectory(prefix="torchtvm-placement-") as tmp:
        runners = {name: TvmRunner.from_library(builder.export_library(ex, os.path.join(tmp, f"{name}.so")), info.kind) for name, ex in (("library", default_ex), ("per_op", mixed_ex))}
        for _ in range(2):  # interleaved, so that a burst of load hits both
            for name, runner in runners.items():
                timings.setdefault(name, []).extend(runner.time_ms(sample, repeat=5))
    # The fastest run of each: on a busy machine the median measures the load (see measure.py).
    timings = {k: min(v) for k, v in timings.items()}
    ctx.check_cancelled()
    kept = timings["per_op"] < timings["library"]
    note = (
        f"auto {'kept' if kept else 'dropped'} the per-op placement ({moved}; {wino_note}): "
        f"{timings['per_op']:.3f} ms against {timings['library']:.3f} ms for the default (fastest of 10 interleaved runs)"
    )
    ctx.log(note)
    choice = {"note": note, "kept": kept, "per_op_ms": timings["per_op"], "library_ms": timings["library"]}
    return (mixed_ex, mixed_offloads, choice, measured) if kept else (default_ex, offloads, choice, measured)


def _placement_report(imported, info, placement: str, offloads: list, runner, specs, total_ms, measured: dict) -> dict:
    from .backend import library, placement as report

    sample = random_inputs(specs)
    tvm_inputs = runner.to_tvm(sample)
    profile = report.profile_library(lambda: runner.vm["main"](*tvm_inputs)) if offloads else None
    # The ops the library could take that stayed in TVM (all of them under --placement tvm).
    taken = {o.name for o in offloads}
    candidates = [c for c in library.candidates(imported.mod) if c.name not in taken] if info.kind == "llvm" else []
    rep = report.report(placement, offloads, candidates, profile, total_ms, measured)
    return _with_graph_nodes(rep, imported, list(offloads) + list(candidates))


def _with_graph_nodes(rep: dict, imported, placed: list) -> dict:
    """Each placed op names the node of the model's graph it came from (`node`) and the nodes
    fused into its call (`fused`), so that the graph view colours ops by identity."""
    sources = getattr(imported, "sources", None)
    if not sources:
        return rep
    try:
        from .provenance import op_nodes, source_graph

        feeds, ops = source_graph(imported.mod, sources)
        by_name = {o.name: o for o in placed}
        for op in rep.get("ops", []):
            o = by_name.get(op.get("name"))
            if o is None or not getattr(o, "vars", None):
                continue
            node, fused = op_nodes(o.kind, o.vars, sources, feeds, ops)
            if node is not None:
                op["node"] = node
            if fused:
                op["fused"] = fused
    except Exception:  # the graph view falls back to matching by kind and order
        pass
    return rep


def _library_metadata(offloads: list) -> dict:
    from .backend.placement import export_metadata

    meta = export_metadata(offloads)
    return {"library_kernels": meta} if meta else {}


# Largest total input element count a verification run at a range's upper end may use; above it the
# "high" check runs at the largest size that fits (and says so in the result).
_VERIFY_MAX_ELEMENTS = 1 << 20


def verification_shapes(specs) -> list[list[tuple[int, ...]]] | None:
    """Shape sets that exercise every symbolic dim: the sample size, each range's minimum, a middle
    value and its maximum (all symbols together, sharing one value per symbol across inputs), and
    with several symbols one mixed set (first symbol low, the others high). None when all static."""
    syms = {}
    for s in specs:
        for d in s.dims:
            if isinstance(d, SymDim):
                syms.setdefault(d.name, d)
    if not syms:
        return None

    def shapes(values: dict) -> list[tuple[int, ...]]:
        return [tuple(d if isinstance(d, int) else values[d.name] for d in s.dims) for s in specs]

    def elements(values: dict) -> int:
        return sum(math.prod(shp) for shp in shapes(values))

    high = {n: d.max for n, d in syms.items()}
    while elements(high) > _VERIFY_MAX_ELEMENTS and any(high[n] > syms[n].min for n in high):
        n = max(high, key=lambda k: high[k] - syms[k].min)
        high[n] = max(syms[n].min, high[n] // 2)
    low = {n: d.min for n, d in syms.items()}
    mid = {n: (low[n] + high[n] + 1) // 2 for n in syms}
    sample = {n: d.sample() for n, d in syms.items()}
    candidates = [sample, low, mid, high]
    if len(syms) > 1:
        first = next(iter(syms))
        candidates.append({n: (low[n] if n == first else high[n]) for n in syms})
    out: list[list[tuple[int, ...]]] = []
    for c in candidates:
        shp = shapes(c)
        if shp not in out:
            out.append(shp)
    return out


def verify_runner(module, runner: TvmRunner, specs, shapes=None) -> dict:
    """Run both on the same random inputs; for symbolic dims, at each size set in `shapes`."""
    shape_sets = shapes or [None]
    checks = []
    for i, shp in enumerate(shape_sets):
        inputs = random_inputs(specs, shp, seed=i)
        ref = run_reference(module, inputs, specs)
        try:
            got = runner.run(inputs)
        except Exception as e:
            raise EngineError("run_failed", f"The compiled module failed on inputs of shape {[list(t.shape) for t in inputs]}: {str(e).strip().splitlines()[-1][:300]}", str(e)) from e
        res = compare(got, ref)
        res["input_shapes"] = [list(t.shape) for t in inputs]
        checks.append(res)
    if len(checks) == 1:
        return checks[0]
    worst = next((c for c in checks if not c["ok"]), checks[0])
    return {"ok": all(c["ok"] for c in checks), "outputs": worst["outputs"], "checks": checks}


def verify_edge_values(module, runner: TvmRunner, specs) -> dict:
    """The same comparison on inputs full of edge values (verify.edge_cases), at the sample shape.
    Reported apart from the random-input verification: a difference here is a warning about how
    the compiled code treats NaN/inf/extremes, not a wrong result on ordinary inputs."""
    cases = []
    for name, inputs in edge_cases(specs):
        entry = {"case": name}
        try:
            ref = run_reference(module, inputs, specs)
        except EngineError as e:
            entry.update(ok=True, skipped=f"PyTorch itself rejects these inputs: {e.message}")
            cases.append(entry)
            continue
        try:
            entry.update(compare(runner.run(inputs), ref))
        except Exception as e:
            entry.update(ok=False, reason=f"The compiled module failed on these inputs: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__}")
        cases.append(entry)
    return summarize_edge(cases)
