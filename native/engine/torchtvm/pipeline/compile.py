"""The compile and tune jobs: the stages of pipeline/stages.py, in order, over one `Run`.

    compile:  load -> import -> place/build -> verify -> measure -> export
    tune:     load -> import (static sizes) -> tune -> import (the specs) -> place/build -> ...
    fallback: the build stage swapped for pipeline/fallback, when the whole model does not import
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time

import torch

from torchtvm.backend import build as builder
from torchtvm.backend.executor import TvmRunner
from torchtvm.backend.kernel_calls import kernel_calls
from torchtvm.backend.kernel_profile import profile_kernels
from torchtvm.backend.placement import (
    build_with_placement,
    export_metadata,
    placement_report,
)
from torchtvm.common import write_roots
from torchtvm.common.errors import EngineError
from torchtvm.common.options import CompileOptions
from torchtvm.common.progress import JobContext, Timer
from torchtvm.common.specs import random_inputs
from torchtvm.deploy import builds
from torchtvm.deploy.export import save_exported
from torchtvm.frontend.graph import model_graph, program_graph
from torchtvm.frontend.import_cache import ImportCache
from torchtvm.frontend.loader import is_exported
from torchtvm.frontend.provenance import op_nodes, source_graph
from torchtvm.pipeline import stages
from torchtvm.pipeline.fallback import compile_fallback, fallback_hint
from torchtvm.pipeline.stages import Run
from torchtvm.tune.tuner import static_tuning_specs, tune
from torchtvm.verify.per_op import compare_ops
from torchtvm.verify.reference import model_signature


class CompiledModel:
    """The whole model compiled by TVM (library kernels placed inside it): the build stage's product."""

    label, subject, short, artifact = "TVM", "The compiled module", "TVM", "the deployable model"
    partial = False

    def __init__(self, executable, lib_path: str, offloads: list, choice: dict | None, measured: dict, run: Run):
        self.executable, self.lib_path, self.offloads, self.choice, self.measured = executable, lib_path, offloads, choice, measured
        assert run.imported is not None
        self.num_outputs = run.imported.num_outputs
        self._info = run.target()
        self._runner: TvmRunner | None = None
        self._instrumented: TvmRunner | None = None

    @property
    def runner(self) -> TvmRunner:
        if self._runner is None:
            self._runner = TvmRunner.from_library(self.lib_path, self._info.kind)
        return self._runner

    @property
    def instrumented_runner(self) -> TvmRunner:
        """The same build as the bytecode VM, whose instrument hook times and captures each kernel
        call (the deployed build's compiled VM has none): built on first use, for diagnostics."""
        if self._instrumented is None:
            executable = builder.instrumented_build(self.executable, self._info)
            if executable is self.executable:
                self._instrumented = self.runner
            else:
                fd, path = tempfile.mkstemp(prefix="torchtvm-instrumented-", suffix=".so")
                os.close(fd)
                try:
                    self._instrumented = TvmRunner.from_library(builder.export_library(executable, path), self._info.kind)
                finally:
                    os.unlink(path)
        return self._instrumented

    def run(self, inputs):
        return self.runner.run(inputs)

    def time_runs(self, inputs, repeat: int) -> list[float]:
        return self.runner.time_ms(inputs, repeat=repeat)

    def costliest(self, inputs, n: int = 3) -> list[dict]:
        """The kernels that take most of a run (TVM's fused kernels by name, library calls by
        function), with their share of the profiled run."""
        kernels = profile_kernels(self.instrumented_runner, inputs)
        total = sum(k.ms for k in kernels) or 1.0
        return [{"kernel": k.name, "ms": k.ms, "calls": k.calls, "share": k.ms / total} for k in kernels[:n]]

    def kernel_calls(self, info) -> list:
        """Each kernel call of the build in run order, with the values it computes (per-op comparison)."""
        return kernel_calls(self.executable.placed, info)

    def export(self, path: str, run: Run) -> str:
        """A drop-in replacement for the model: its own arguments in, its own output structure out
        (one run of the model on sample inputs says what that structure is)."""
        signature = model_signature(run.module, random_inputs(run.specs), run.specs)
        extra: dict = {"source_model": run.options.model, **_library_metadata(self.offloads)}
        verification = run.result.get("verification")
        if verification is not None:  # None: the copy a server verifies (stages._remote_package)
            extra["verification_ok"] = bool(verification.get("ok", True))
            # What the runtime warns about when it loads an export that was not verified (or
            # differed from PyTorch) and was exported anyway (export_unverified, accept_edge_mismatch).
            extra["verification"] = builds.verification_summary(verification, self.label)
        return save_exported(path, self.lib_path, run.target(), run.specs, self.num_outputs, extra, signature)


def compile_model(params: dict, ctx: JobContext) -> dict:
    """RPC method "compile"."""
    return compile_run(CompileOptions.from_params(params), ctx).result


def tune_model(params: dict, ctx: JobContext) -> dict:
    """RPC method "tune": the compile parameters plus trials, trials_per_task, work_dir, …"""
    return compile_run(CompileOptions.from_params(params, tune=True), ctx).result


def compile_run(options: CompileOptions, ctx: JobContext) -> Run:
    """Run every stage; the returned `Run` holds the result (`.result`, what the RPC replies) and
    the in-process products (`.built`: the executable or the partitioned TorchScript)."""
    t_start = time.perf_counter()
    with write_roots.allowed(options.write_roots):
        return _compile_run(options, ctx, t_start)


def _compile_run(options: CompileOptions, ctx: JobContext, t_start: float) -> Run:
    fleet = None
    if options.tracker or options.rpc_key:
        options, fleet = _fleet(options, ctx)
    run = Run(options, ctx, stages.set_threads(options.threads))
    run.fleet = fleet
    run.target()  # a target that is not one fails now, not after the load and the import
    stages.load(run)
    tuning = None
    import_cache = None
    if options.trials:
        tuning, import_cache = _tune_stage(run)
    t = Timer()
    if run.imported is None:
        try:
            cache = ImportCache(import_cache, options.model, run.specs) if import_cache else None
            run.imported, reused = stages.import_model(run, run.specs, cache)
            if cache is not None and reused:
                ctx.log(f"Reused the imported model kept in {cache.dir}.")
        except EngineError as e:
            if e.code not in ("unsupported_op", "import_failed") or options.trials:
                raise
            return _fallback(run, e, t.seconds)
    run.timings_s["import"] = t.seconds
    ctx.check_cancelled()

    built = run.built = _build(run)
    stages.check_runnable(run)
    info = run.target()
    run.result.update({
        "model": options.model,
        "inputs": [s.to_json() for s in run.specs],
        "target": info.to_json(),
        "num_outputs": built.num_outputs,
        "timings_s": run.timings_s,
        "verification": None,
        "threads": run.threads,
        "files": {"library": built.lib_path},
    })
    t = Timer()
    stages.verify(run)
    run.timings_s["verify"] = t.seconds
    t = Timer()
    stages.measure(run, random_inputs(run.specs))
    run.timings_s["measure"] = t.seconds
    t = Timer()
    if not run.not_runnable:
        total_ms = run.result.get("latency_ms", {}).get("tvm", {}).get("p50")
        rep, placed = placement_report(run.imported.mod, info, options.placement, built.offloads, built.runner, run.specs, total_ms, built.measured)
        run.result["placement"] = rep = _with_graph_nodes(rep, run.imported, placed, run.module)
        choice = dict(built.choice or {})
        if choice:
            rep["note"] = choice.pop("note")
            if choice:
                rep["per_op"] = choice
    run.timings_s["report"] = t.seconds
    if options.compare_ops:
        t = Timer()
        _compare_ops(run)
        run.timings_s["compare_ops"] = t.seconds
    stages.finish(run)
    if tuning is not None:
        tuning["measured_ms"] = (run.result.get("latency_ms") or {}).get("tvm", {}).get("p50")
        tuning["wall_s"] = round(time.perf_counter() - t_start, 3)
        run.result["tuning"] = tuning
    t = Timer()
    stages.package(run)
    run.timings_s["package"] = t.seconds
    t = Timer()
    stages.export(run)
    run.timings_s["export"] = t.seconds
    return run


def _fleet(options: CompileOptions, ctx: JobContext):
    """The tracker key's servers, asked before anything is loaded or built (a tracker that is down,
    a key without servers, servers that disagree on CPU features: a sentence now), and the options
    with the target set to their CPU (a tune: always; a compile: when it names no other target)."""
    from torchtvm.remote import fleet as _fleet_mod

    if not options.tracker or not options.rpc_key:
        raise EngineError("bad_params", "Measuring on other machines needs both a tracker (--tracker HOST:PORT) and a key (--key KEY).")
    ctx.progress("tune" if options.trials else "build", f"asking the servers of key {options.rpc_key!r} at {options.tracker} for their CPU")
    fleet = _fleet_mod.probe(options.tracker, options.rpc_key)
    target = fleet.target_json(options.threads)
    s = fleet.servers[0]
    if not options.trials:
        # No tune: the build is for the target asked (the servers' CPU when none is named); where
        # this machine cannot run it and the servers can, it is verified and timed on one of them.
        if options.target in ("llvm", "cpu", "native"):
            ctx.log(f"Building for the CPU of the servers of key {options.rpc_key!r} ({s.get('cpu_model')}, {s.get('llvm_cpu')}): {target}.")
            options = options.replace(target=target)
        ctx.log(f"Where this machine cannot run the build, it is verified and timed on a server of key {options.rpc_key!r} "
                f"({', '.join(x['name'] for x in fleet.servers)}). " + _fleet_mod.NO_AUTH)
        return options, fleet
    if options.target not in ("llvm", "cpu", "native") and options.target != target:
        ctx.log(f"The target is the servers' CPU ({target}), not {options.target}: code is measured there.", "warn")
    ctx.log(f"Measuring on {fleet.size} server(s) of key {options.rpc_key!r} ({', '.join(x['name'] for x in fleet.servers)}): "
            f"{s.get('cpu_model')}, built for {s.get('llvm_cpu')}. " + _fleet_mod.NO_AUTH)
    return options.replace(target=target), fleet


def _tune_stage(run: Run) -> tuple[dict, str | None]:
    """Import at static sizes, tune, and leave the records to build with in `run.database`.
    Returns (the tuning report, the work dir to import the symbolic model through, or None when
    the tuned import is the one to build)."""
    options, ctx = run.options, run.ctx
    # MetaSchedule tunes kernels of static shape only (a symbolic one fails "Cannot convert ...
    # Array[ir.Var] to Array<IntImm>"): tune at the sample sizes (or the sizes given in
    # tune_sizes), then build the symbolic module, verified at the ends of every range.
    tune_specs, tuned_at = static_tuning_specs(run.specs, options.tune_sizes)
    if tuned_at:
        ctx.log("Tuning at " + ", ".join(f"{k}={v}" for k, v in tuned_at.items()) + "; the built module serves the whole range (kernels whose shapes follow a symbol keep the default schedule).")
    info = run.target()
    stages.check_runnable(run)
    if run.not_runnable and run.fleet is None:
        # Every trial runs on this machine: code for a CPU it is not would die with SIGILL.
        raise EngineError("target_not_runnable", f"{run.not_runnable} Tuning measures every candidate here: tune on a machine with that CPU, or compile without --trials.")
    assert options.work_dir is not None
    try:
        os.makedirs(options.work_dir, exist_ok=True)
    except OSError as e:
        raise EngineError("bad_work_dir", f"Cannot create the tuning work dir {options.work_dir}: {e.strerror}.") from e
    # The work dir keeps the imported model and its tasks (import_cache): a resume with the same
    # model file and input specs starts tuning at once instead of importing again.
    t_import = time.perf_counter()
    cache = ImportCache(options.work_dir, options.model, tune_specs)
    imported, reused = stages.import_model(run, tune_specs, cache)
    if reused:
        ctx.progress("import", "reusing the imported model kept in the work dir")
    ctx.check_cancelled()
    run.database, report = tune(imported, cache, reused, t_import, info, options, run.threads, ctx, run.fleet)
    report["tuned_at"] = tuned_at or None
    # MetaSchedule records are per static shape: in a module with symbolic dims they apply to the
    # kernels whose shapes do not follow a symbol; the others keep the default schedule.
    report["tuned_at_note"] = ("Tuned at " + ", ".join(f"{k}={v}" for k, v in tuned_at.items()) + ": the records apply to kernels whose shapes do not follow a symbol; "
                               "kernels that do keep the default schedule over the whole range.") if tuned_at else None
    if tuned_at:
        return report, options.work_dir  # build the symbolic module, kept in the work dir the same way
    run.imported = imported  # the build imports nothing again: the module tuned is the one to build
    return report, None


def _build(run: Run) -> CompiledModel:
    t = Timer()
    info, ctx = run.target(), run.ctx
    assert run.imported is not None
    ctx.progress("build", f"building for {info.kind} ({info.mcpu or 'default cpu'})")
    executable, offloads, choice, measured = build_with_placement(run.imported.mod, run.specs, info, run.database, run.options.placement, ctx)
    os.makedirs(run.options.out_dir, exist_ok=True)
    lib_path = os.path.join(run.options.out_dir, "model.so")
    write_roots.check(lib_path, "build folder")
    lib_path = builder.export_library(executable, lib_path)
    run.timings_s["build"] = t.seconds
    ctx.check_cancelled()
    return CompiledModel(executable, lib_path, offloads, choice, measured, run)


def _fallback(run: Run, error: EngineError, import_s: float) -> Run:
    """The whole model did not import: by default the parts that import compile and the rest stays
    in TorchScript; strict asks for all or nothing. A .pt2 has no TorchScript graph to fall back to."""
    if not run.options.fallback or is_exported(run.module):
        raise EngineError(error.code, error.message + ("" if is_exported(run.module) else fallback_hint()), error.detail) from error
    if run.options.compare_ops:
        run.result["op_comparison"] = {"ops": [], "first_failing": None, "note": "Not compared: the per-op comparison needs the whole model compiled as one module, and part of this one stays in TorchScript."}
    try:
        compile_fallback(run, error, import_s)
    except EngineError as fe:
        if fe.code != "fallback_nothing":
            raise
        # Nothing around the unsupported part compiles either: the import error is the news.
        raise EngineError(error.code, f"{error.message} Nothing around it could be compiled either: {fe.message}", error.detail) from fe
    return run


def _with_graph_nodes(rep: dict, imported, placed: list, module=None) -> dict:
    """Each placed op names the node of the model's graph it came from (`node`), the nodes fused
    into its call (`fused`) and, where the graph records it, the submodule it belongs to (`scope`,
    e.g. layer2.0.conv2), so that the graph view colours ops by identity and the report names
    rows by their place in the model rather than by the last op fused into them."""
    sources = getattr(imported, "sources", None)
    if not sources:
        return rep
    try:
        feeds, ops = source_graph(imported.mod, sources)
        by_name = {o.name: o for o in placed}
        scopes = _scopes(module)
        for op in rep.get("ops", []):
            o = by_name.get(op.get("name"))
            if o is None or not getattr(o, "vars", None):
                continue
            node, fused = op_nodes(o.kind, o.vars, sources, feeds, ops)
            if node is not None:
                op["node"] = node
                if o.kind == "depthwise_pointwise":
                    # Two convolutions in one call: the submodule holding both (a MobileNet block).
                    paths = [scopes[n].split(".") for n in [node, *fused] if n in scopes]
                    common = [parts[0] for parts in itertools.takewhile(lambda parts: len(set(parts)) == 1, zip(*paths))]
                    if common:
                        op["scope"] = ".".join(common)
                elif node in scopes:
                    op["scope"] = scopes[node]
            if fused:
                op["fused"] = fused
    except Exception:  # the graph view falls back to matching by kind and order
        pass
    return rep


def _scopes(module) -> dict[str, str]:
    """Graph node id -> submodule path, where the graph records it (TorchScript's module hierarchy,
    a torch.export program's nn_module_stack)."""
    if isinstance(module, torch.jit.ScriptModule):
        graph = model_graph(module)
    elif is_exported(module):
        graph = program_graph(module, [])
    else:
        return {}
    return {n["id"]: n["scope"] for n in graph["nodes"] if n.get("scope")}


def _compare_ops(run: Run) -> None:
    """On request (compare_ops): each kernel call of the build against PyTorch's value for the same
    node (verify/per_op.py), as `op_comparison` in the result."""
    if run.not_runnable:
        run.result["op_comparison"] = {"ops": [], "first_failing": None, "note": f"Not compared: {run.not_runnable}"}
        return
    run.ctx.progress("compare_ops", "comparing each op's output with PyTorch's, node by node")
    reference = run.imported
    if reference is not None and reference.program is None:
        # An import kept in a tuning work dir holds no program: import again (the same names).
        reference, _ = stages.import_model(run, run.specs)
    try:
        run.result["op_comparison"] = compare_ops(run, _scopes(run.module), reference)
    except Exception as e:  # the build and its verification stand; the comparison says why it is missing
        run.ctx.log(f"The per-op comparison failed: {type(e).__name__}: {e}", "warn")
        run.result["op_comparison"] = {"ops": [], "first_failing": None, "note": f"Not compared: {type(e).__name__}: {str(e)[:300]}"}
    run.ctx.check_cancelled()


def _library_metadata(offloads: list) -> dict:
    meta = export_metadata(offloads)
    return {"library_kernels": meta} if meta else {}


def tune_and_build(model, inputs, trials: int, trials_per_task: int | None = None, work_dir: str | None = None, target: str = "llvm", threads: int | None = None, on_event=None, **extra) -> Run:
    """Python entry: tune `model` (a path or a torch.jit.ScriptModule) and build it with the records.

    `inputs` are input specs (dicts or "x:1,3,224,224:float32"-style strings as the engine takes
    them); `on_event(event, data)` receives progress and `tune.trial` events; `extra` are more
    request parameters (out_dir, export_path, …). Returns the finished `Run` (`.result`, `.built`).
    """
    tmp = None
    if not isinstance(model, (str, os.PathLike)):
        tmp = tempfile.NamedTemporaryFile(suffix=".pt", delete=False)
        tmp.close()
        torch.jit.save(model, tmp.name)
        model = tmp.name
        if work_dir is None:
            raise EngineError("bad_work_dir", "Give a work_dir when tuning an in-memory module.")
    try:
        params = {"model": str(model), "inputs": inputs, "trials": trials, "trials_per_task": trials_per_task, "work_dir": work_dir, "target": target, "threads": threads, **extra}
        return compile_run(CompileOptions.from_params(params, tune=True), JobContext("local", on_event))
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
