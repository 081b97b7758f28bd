"""Module-level fallback: keep a model's forward in TorchScript, run its submodules with TVM.

When the whole model cannot be imported (a loop whose trip count comes from the input, an op TVM's
importer lacks), the parts that import are still worth compiling. As Torch-TensorRT does, the
parent's TorchScript graph stays as it is (loops, ifs, unsupported ops) and each call
`self.<child>(...)` whose child imports cleanly is replaced by a call to a
torch.classes.torchtvm.Module holding that child's compiled code. The result is an ordinary
TorchScript module: it saves, loads (after `import torchtvm`) and pickles the compiled libraries.

Steps, all on copies of the model (the graphs are edited with torch._C's graph API):
1. capture: before every `prim::CallMethod[name="forward"]` on `prim::GetAttr[name=c](self)`, append
   the call's tensor arguments to a List[List[Tensor]] attribute; run the model at the
   verification sizes; read the attribute back;
2. specs: per argument, dims equal in every capture stay numbers; dims that vary (with the user's
   symbolic dims or across loop iterations) become symbols, named after the user's symbol when
   they follow it;
3. compile each child standalone (the ordinary import/build path), check it against TorchScript on
   the captured inputs; a child that fails to import and owns calls of its own is searched in turn
   (when its TorchScript type is not shared with another module);
4. rewrite: GetAttr of the registered custom-class attribute, ListConstruct of the arguments,
   CallMethod "forward", then __getitem__ / ListUnpack (+ TupleConstruct) for the outputs;
   lint, save/load, compare with the original.
"""

from __future__ import annotations

import io
import statistics
import time
import warnings
from dataclasses import dataclass, field

import torch

from .errors import EngineError
from .specs import DEFAULT_SYM_MAX, TORCH_TO_NAME, InputSpec, SymDim
from .verify import compare

_TENSOR = torch._C.TensorType.get()
_TENSOR_LIST = torch._C.ListType(_TENSOR)


def insert_forward_call(graph, self_v, attr: str, cls_type, inputs: list, before):
    """Before `before`, emit `self.<attr>.forward([inputs])` (a compiled module held as an
    attribute of type `cls_type`); returns the GetAttr, ListConstruct and CallMethod nodes."""
    get = graph.create("prim::GetAttr", [self_v])
    get.s_("name", attr)
    get.output().setType(cls_type)
    get.insertBefore(before)
    lst = graph.create("prim::ListConstruct", inputs)
    lst.output().setType(_TENSOR_LIST)
    lst.insertBefore(before)
    call = graph.create("prim::CallMethod", [get.output(), lst.output()])
    call.s_("name", "forward")
    call.output().setType(_TENSOR_LIST)
    call.insertBefore(before)
    return get, lst, call
_CAPTURE_LIST = torch._C.ListType(_TENSOR_LIST)
_CAPTURE_PREFIX = "_torchtvm_capture_"
ATTR_PREFIX = "torchtvm_"  # attribute holding a child's compiled module: torchtvm_<child path>
# Captured calls a compiled child is checked on (spread over all captures).
_CHECKS_PER_CHILD = 6


# -- graph helpers --------------------------------------------------------------------------------


def fresh_copy(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """An independent copy (its own types and graphs) through save/load."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, buf)
        buf.seek(0)
        m = torch.jit.load(buf, map_location="cpu")
    m.eval()
    return m


def _walk(block):
    for n in block.nodes():
        yield n
        for b in n.blocks():
            yield from _walk(b)


def count_ops(module) -> int:
    """aten:: nodes in the fully inlined forward graph (loop and if bodies included)."""
    g = module.forward.graph.copy()
    torch._C._jit_pass_inline(g)
    return sum(1 for n in _walk(g) if n.kind().startswith("aten::"))


@dataclass
class Site:
    """One `self.<child>(...)` call in an owner's forward graph."""

    owner: str  # dotted path of the module whose forward holds the call ("" = the model)
    child: str  # attribute name of the called submodule
    index: int  # position among the owner's call sites (same in every fresh copy)
    n_args: int
    out: str  # "tensor" or "tuple"
    n_out: int
    problem: str | None = None

    @property
    def path(self) -> str:
        return f"{self.owner}.{self.child}" if self.owner else self.child


def _submodule(root, path: str):
    m = root
    for part in filter(None, path.split(".")):
        m = getattr(m, part)
    return m


def _call_nodes(graph):
    self_v = next(iter(graph.inputs()))
    out = []
    for n in _walk(graph):
        if n.kind() != "prim::CallMethod" or n.s("name") != "forward":
            continue
        src = n.inputsAt(0).node()
        if src.kind() == "prim::GetAttr" and src.inputsAt(0) is self_v:
            out.append(n)
    return out


def find_sites(module, owner: str = "") -> list[Site]:
    graph = _submodule(module, owner).forward.graph
    sites = []
    for i, n in enumerate(_call_nodes(graph)):
        child = n.inputsAt(0).node().s("name")
        args = list(n.inputs())[1:]
        problem = None
        if not args:
            problem = "it takes no tensor inputs"
        elif any(a.type().kind() != "TensorType" for a in args):
            problem = "it takes arguments that are not tensors (" + ", ".join(str(a.type()) for a in args) + ")"
        t = n.output().type()
        out, n_out = "tensor", 1
        if t.kind() == "TupleType":
            elems = t.elements()
            out, n_out = "tuple", len(elems)
            if not elems or any(e.kind() != "TensorType" for e in elems):
                problem = problem or f"it returns {t}, not a tensor or a tuple of tensors"
        elif t.kind() != "TensorType":
            problem = problem or f"it returns {t}, not a tensor or a tuple of tensors"
        sites.append(Site(owner, child, i, len(args), out, n_out, problem))
    return sites


def _type_is_unique(root, path: str) -> bool:
    t = _submodule(root, path)._c._type()
    return sum(1 for _name, m in root.named_modules() if m._c._type() == t) == 1


def search_sites(module) -> list[Site]:
    """Call sites in the model's forward and, recursively, in children whose type is not shared
    (rewriting a shared type's graph would change every module of that type)."""
    out, todo = [], [""]
    while todo:
        owner = todo.pop(0)
        sites = find_sites(module, owner)
        out.extend(sites)
        for s in sites:
            if s.problem is None and _type_is_unique(module, s.path) and _call_nodes(_submodule(module, s.path).forward.graph):
                todo.append(s.path)
    return out


# -- 1. capture -----------------------------------------------------------------------------------


def _capture_attr(site: Site) -> str:
    return f"{_CAPTURE_PREFIX}{site.index}"


def instrument(module, sites: list[Site]) -> None:
    """Before each call site, append its tensor arguments to a List[List[Tensor]] attribute."""
    by_owner: dict[str, list[Site]] = {}
    for s in sites:
        by_owner.setdefault(s.owner, []).append(s)
    for owner, owner_sites in by_owner.items():
        m = _submodule(module, owner)
        graph = m.forward.graph
        self_v = next(iter(graph.inputs()))
        nodes = _call_nodes(graph)
        for s in owner_sites:
            if s.problem:
                continue
            node = nodes[s.index]
            attr = _capture_attr(s)
            m._c._register_attribute(attr, _CAPTURE_LIST, [])
            lst = graph.create("prim::ListConstruct", list(node.inputs())[1:])
            lst.output().setType(_TENSOR_LIST)
            lst.insertBefore(node)
            get = graph.create("prim::GetAttr", [self_v])
            get.s_("name", attr)
            get.output().setType(_CAPTURE_LIST)
            get.insertBefore(node)
            app = graph.create("aten::append", [get.output(), lst.output()])
            app.output().setType(_CAPTURE_LIST)
            app.insertBefore(node)
        torch._C._jit_pass_lint(graph)


def take_captures(module, site: Site) -> list[list[torch.Tensor]]:
    m = _submodule(module, site.owner)
    attr = _capture_attr(site)
    got = [list(x) for x in m._c.getattr(attr)]
    m._c.setattr(attr, [])
    return got


# -- 2. specs from captured shapes ----------------------------------------------------------------


@dataclass
class Capture:
    run: int  # index of the shape set the model ran with
    tensors: list[torch.Tensor]


def derive_specs(path: str, captures: list[Capture], run_symbols: list[dict[str, int]], user_syms: dict[str, SymDim]) -> list[InputSpec]:
    """Input specs for a child from the tensors it was called with."""
    first = captures[0].tensors
    specs = []
    fresh: dict[tuple, SymDim] = {}
    for i, t0 in enumerate(first):
        name = f"input{i}"
        if any(c.tensors[i].dim() != t0.dim() for c in captures):
            raise EngineError("fallback_shapes", f"{path} is called with a different number of dimensions for input {i + 1} from call to call.")
        if any(c.tensors[i].dtype != t0.dtype for c in captures):
            raise EngineError("fallback_shapes", f"{path} is called with different dtypes for input {i + 1} from call to call.")
        if t0.dtype not in TORCH_TO_NAME:
            raise EngineError("fallback_shapes", f"{path} takes a {str(t0.dtype).replace('torch.', '')} tensor, which the compiler does not support.")
        dims = []
        for j in range(t0.dim()):
            values = tuple(int(c.tensors[i].shape[j]) for c in captures)
            if len(set(values)) == 1:
                dims.append(values[0])
                continue
            sym = None
            for sname, sd in user_syms.items():
                if all(run_symbols[c.run].get(sname) == v for c, v in zip(captures, values)):
                    sym = sd
                    break
            if sym is None:
                if values not in fresh:
                    base = "".join(ch if ch.isalnum() else "_" for ch in path)
                    fresh[values] = SymDim(f"{base}_d{len(fresh)}", 1, max(DEFAULT_SYM_MAX, max(values)))
                sym = fresh[values]
            dims.append(sym)
        rng = None
        if not t0.dtype.is_floating_point and t0.dtype != torch.bool:
            lo = min(int(c.tensors[i].min()) for c in captures if c.tensors[i].numel())
            hi = max(int(c.tensors[i].max()) for c in captures if c.tensors[i].numel())
            rng = (lo, hi + 1)
        specs.append(InputSpec(name, tuple(dims), TORCH_TO_NAME[t0.dtype], rng))
    return specs


# -- 3. compile a child ---------------------------------------------------------------------------


@dataclass
class Compiled:
    site_path: str
    runtime_object: object
    specs: list[InputSpec]
    num_outputs: int
    check: dict
    seconds: float
    ts_ms: float = 0.0  # TorchScript time of its calls during one run of the model (sample sizes)


def compile_child(child_ts, path: str, specs: list[InputSpec], captures: list[Capture], info, model_path: str | None) -> Compiled:
    from . import builder, export
    from .importer import import_torchscript, run_reference

    t0 = time.perf_counter()
    imported = import_torchscript(child_ts, specs)
    executable = builder.build(imported.mod, info)
    lib = export.library_bytes(executable)
    meta = export.make_metadata(lib, info, specs, imported.num_outputs, {"source_model": model_path, "submodule": path, "fallback": True})
    obj = export.make_runtime_object(lib, meta)
    picks = sorted({round(k * (len(captures) - 1) / max(1, _CHECKS_PER_CHILD - 1)) for k in range(_CHECKS_PER_CHILD)})
    checks = []
    for k in picks:
        inputs = captures[k].tensors
        ref = run_reference(child_ts, inputs, specs)
        got = list(obj.forward(list(inputs)))
        res = compare(got, ref)
        res["input_shapes"] = [list(t.shape) for t in inputs]
        checks.append(res)
    ok = all(c["ok"] for c in checks)
    return Compiled(path, obj, specs, imported.num_outputs, {"ok": ok, "checks": checks}, time.perf_counter() - t0)


# -- 4. rewrite -----------------------------------------------------------------------------------


def attr_name(path: str) -> str:
    return ATTR_PREFIX + path.replace(".", "_")


def rewrite(module, site: Site, compiled: Compiled) -> None:
    """Replace the call `self.<child>(args)` in the owner's graph with the compiled module's call."""
    owner = _submodule(module, site.owner)
    graph = owner.forward.graph
    self_v = next(iter(graph.inputs()))
    node = _call_nodes(graph)[site.index]
    attr = attr_name(site.path)
    obj = compiled.runtime_object
    cls_type = obj._type()
    if not owner._c.hasattr(attr):
        owner._c._register_attribute(attr, cls_type, obj)
    _, _, call = insert_forward_call(graph, self_v, attr, cls_type, list(node.inputs())[1:], node)
    if site.out == "tensor":
        zero = graph.create("prim::Constant")
        zero.i_("value", 0)
        zero.output().setType(torch._C.IntType.get())
        zero.insertBefore(node)
        item = graph.create("aten::__getitem__", [call.output(), zero.output()])
        item.output().setType(_TENSOR)
        item.insertBefore(node)
        new = item.output()
    else:
        unpack = graph.create("prim::ListUnpack", [call.output()], site.n_out)
        for o in unpack.outputs():
            o.setType(_TENSOR)
        unpack.insertBefore(node)
        tup = graph.create("prim::TupleConstruct", list(unpack.outputs()))
        tup.output().setType(node.output().type())
        tup.insertBefore(node)
        new = tup.output()
    node.output().replaceAllUsesWith(new)
    child_get = node.inputsAt(0).node()
    node.destroy()
    if not child_get.output().uses():
        child_get.destroy()
    torch._C._jit_pass_lint(graph)


# -- the job --------------------------------------------------------------------------------------


def _median_ms(fn, repeat: int) -> float:
    samples = []
    with torch.no_grad():
        for _ in range(3):  # the profiling executor optimises after its first runs
            fn()
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


class _ScriptedRunner:
    """The runner interface (run(inputs) -> outputs) over the partly compiled TorchScript module."""

    def __init__(self, module, specs):
        self.module, self.specs = module, specs

    def run(self, inputs):
        from .importer import run_reference

        return run_reference(self.module, inputs, self.specs)


def _first_sentence(e: Exception) -> str:
    if isinstance(e, EngineError):
        return e.message
    lines = [l for l in str(e).strip().splitlines() if l.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass
class Partitioned:
    module: torch.jit.ScriptModule  # the rewritten model
    compiled: dict[str, Compiled]
    modules: list[dict]  # [{name, compiled, reason?}]
    coverage: dict
    num_outputs: int = 0
    extra: dict = field(default_factory=dict)


def partition(module: torch.jit.ScriptModule, specs: list[InputSpec], shape_sets: list[list[tuple[int, ...]]], info,
              model_path: str | None = None, progress=lambda msg, frac=None: None, check_cancelled=lambda: None) -> Partitioned:
    """Compile every child (searching deeper below children that fail) and rewrite a copy of the
    model to call the compiled ones. `shape_sets[0]` are the sizes timing and coverage use."""
    from .specs import random_inputs

    capture = fresh_copy(module)
    sites = search_sites(capture)
    if not sites:
        raise EngineError("fallback_nothing", "The model calls no submodules from its forward, so nothing can be compiled separately; module-level fallback needs a model built from submodules.")
    instrument(capture, sites)

    user_syms: dict[str, SymDim] = {}
    for s in specs:
        for d in s.dims:
            if isinstance(d, SymDim):
                user_syms.setdefault(d.name, d)
    run_symbols: list[dict[str, int]] = []
    captures: dict[str, list[Capture]] = {}
    progress("running the model to capture each submodule's inputs")
    with torch.no_grad():
        for r, shapes in enumerate(shape_sets):
            inputs = random_inputs(specs, shapes, seed=r)
            values = {}
            for s, t in zip(specs, inputs):
                for j, d in enumerate(s.dims):
                    if isinstance(d, SymDim):
                        values[d.name] = int(t.shape[j])
            run_symbols.append(values)
            capture(*inputs)
            for site in sites:
                if not site.problem:
                    captures.setdefault(site.path, []).extend(Capture(r, ts) for ts in take_captures(capture, site))

    reference = fresh_copy(module)  # untouched TorchScript, for standalone children and timing
    compiled: dict[str, Compiled] = {}
    report: dict[str, dict] = {}
    owners_done: set[str] = set()

    def visit(owner: str):
        owners_done.add(owner)
        owner_sites = [s for s in sites if s.owner == owner]
        for k, site in enumerate(owner_sites):
            check_cancelled()
            path = site.path
            if path in compiled or path in report:
                continue  # the same child called again: one compiled module serves every call
            entry = {"name": path, "compiled": False}
            report[path] = entry
            if site.problem:
                entry["reason"] = f"Not compiled: {site.problem}."
                continue
            caps = captures.get(path) or []
            if not caps:
                entry["reason"] = "Not compiled: it was not called on the sample inputs."
                continue
            progress(f"compiling submodule {path}")
            try:
                child_specs = derive_specs(path, caps, run_symbols, user_syms)
                child = fresh_copy(_submodule(reference, path))
                c = compile_child(child, path, child_specs, caps, info, model_path)
            except Exception as e:
                entry["reason"] = f"Not compiled: {_first_sentence(e)}"
                entry["error_code"] = getattr(e, "code", "compile_failed")
                if any(s.owner == path for s in sites) and path not in owners_done:
                    entry["searched_children"] = True
                    visit(path)
                continue
            if c.num_outputs != site.n_out:
                entry["reason"] = f"Not compiled: it returns {site.n_out} tensor(s) but the compiled module gives {c.num_outputs}."
                continue
            if not c.check["ok"]:
                entry["reason"] = "Not compiled: its TVM outputs differ from TorchScript's on the captured inputs."
                continue
            entry.update(compiled=True, inputs=[s.to_json() for s in child_specs], seconds=round(c.seconds, 3))
            compiled[path] = c

    visit("")
    if not compiled:
        reasons = "; ".join(f"{e['name']}: {e['reason'].replace('Not compiled: ', '')}" for e in report.values())
        raise EngineError("fallback_nothing", f"No submodule of the model could be compiled with TVM ({reasons}).")

    progress("rewriting the TorchScript graph to call the compiled submodules")
    final = fresh_copy(module)
    for site in sites:
        if site.path in compiled:
            rewrite(final, site, compiled[site.path])
    final = fresh_copy(final)  # proves save/load of the rewritten graph works

    # Coverage: static op counts, and the share of TorchScript time the compiled children took.
    ops_total = count_ops(reference)
    added = sum(1 for s in sites if s.path in compiled and s.out == "tensor")
    ops_left = count_ops(final) - added
    sample = random_inputs(specs, shape_sets[0], seed=0)
    repeat = 20
    whole_ms = _median_ms(lambda: reference(*sample), repeat)
    # Calling a child from Python costs a dispatch that the call inside the graph does not pay;
    # measure it on a trivial scripted module and take it off each call.
    identity = torch.jit.script(_Identity())
    probe = sample[0]
    per_call_ms = _median_ms(lambda: [identity(probe) for _ in range(10)], repeat) / 10
    for path, c in compiled.items():
        child = _submodule(reference, path)
        calls = [cap.tensors for cap in captures[path] if cap.run == 0]

        def run_calls(child=child, calls=calls):
            for args in calls:
                child(*args)

        c.ts_ms = max(0.0, _median_ms(run_calls, repeat) - per_call_ms * len(calls))
    # Children nested inside a compiled child are not double counted: only compiled paths count.
    share = min(1.0, sum(c.ts_ms for c in compiled.values()) / whole_ms) if whole_ms > 0 else 0.0
    for path, c in compiled.items():
        report[path]["torchscript_ms"] = round(c.ts_ms, 4)
    coverage = {
        "ops_total": ops_total,
        "ops_compiled": max(0, ops_total - ops_left),
        "time_share_compiled": round(share, 4),
        "torchscript_ms": round(whole_ms, 4),
        "modules": list(report.values()),
    }
    return Partitioned(final, compiled, list(report.values()), coverage)


def fallback_hint() -> str:
    return " Strict compilation was asked for (CLI --strict); without it those parts stay in TorchScript and the rest compiles."


def compile_fallback(params: dict, ctx, module, specs: list[InputSpec], import_error: EngineError, threads: int, shape_sets, import_s: float = 0.0) -> dict:
    """The compile job's result when the whole model does not import and fallback was asked for."""
    import os

    from . import builder, latency
    from .export import save_scripted
    from .importer import run_reference
    from .jobs import Timer
    from .specs import random_inputs

    path = params.get("model")
    if path:
        # torch's TorchScript converter inlines the graph it was given in place: start again from the file.
        from .loader import load_torchscript

        module = load_torchscript(path)
    ctx.log(f"The whole model could not be imported ({import_error.message}); compiling the parts that import, the rest stays in TorchScript.", "warning")
    info = builder.resolve_target(params.get("target") or "llvm", threads)
    sets = shape_sets or [[s.sample_shape() for s in specs]]
    t = Timer()
    part = None
    # Graph level first (runs of importable ops, loop and branch bodies included); module level
    # (whole submodule calls) when asked for, or when the graph cannot be partitioned.
    if (params.get("fallback_level") or "graph") == "graph":
        from .errors import Cancelled
        from .segments import partition_graph

        excluded = (import_error.detail or "").splitlines() if import_error.code == "unsupported_op" else []
        ctx.progress("build", f"fallback: compiling the graph's importable segments for {info.kind}")
        try:
            part = partition_graph(module, specs, sets, info, path, excluded, progress=lambda m, f=None: ctx.progress("build", m, f), check_cancelled=ctx.check_cancelled)
        except Cancelled:
            raise
        except Exception as e:
            ctx.log(f"Graph-level fallback did not work ({_first_sentence(e)}); trying module-level fallback.", "warning")
    if part is None:
        ctx.progress("build", f"module-level fallback: compiling submodules for {info.kind}")
        part = partition(module, specs, sets, info, path, progress=lambda m, f=None: ctx.progress("build", m, f), check_cancelled=ctx.check_cancelled)
        part.coverage["level"] = "module"
    build_s = t.seconds

    from .cpu_features import why_not_runnable
    from .pipeline import verify_edge_values
    from .verify import json_safe

    # The compiled parts must never run on a CPU that lacks their features (SIGILL).
    not_runnable = why_not_runnable(info.target, info.features) if info.kind == "llvm" else None
    if not_runnable:
        ctx.log(not_runnable + " Verify it on a machine with that CPU.", "warn")
        sets = []
    else:
        ctx.progress("verify", "comparing the partly compiled model with PyTorch on random inputs")
    checks = []
    for i, shp in enumerate(sets):
        inputs = random_inputs(specs, shp, seed=100 + i)
        ref = run_reference(module, inputs, specs)
        try:
            got = run_reference(part.module, inputs, specs)
        except EngineError as e:
            raise EngineError("run_failed", f"The partly compiled model failed on inputs of shape {[list(x.shape) for x in inputs]}: {e.message}", e.detail) from e
        res = compare(got, ref)
        res["input_shapes"] = [list(x.shape) for x in inputs]
        checks.append(res)
    if not_runnable:
        verification = {"ok": False, "skipped": True, "outputs": [], "reason": not_runnable + " Verify it on a machine with that CPU."}
        num_outputs = len(run_reference(module, random_inputs(specs), specs))
    else:
        verification = checks[0] if len(checks) == 1 else {"ok": all(c["ok"] for c in checks), "outputs": next((c for c in checks if not c["ok"]), checks[0])["outputs"], "checks": checks}
        num_outputs = len(checks[0]["outputs"])
        if params.get("edge_values", True):
            ctx.progress("verify", "comparing the partly compiled model with PyTorch on edge values (NaN, inf, -0.0, huge, tiny, zeros)")
            verification["edge_values"] = verify_edge_values(module, _ScriptedRunner(part.module, specs), specs)
    verification = json_safe(verification)

    out_dir = params.get("out_dir") or os.path.join(os.path.dirname(os.path.abspath(path or ".")), "torchtvm-build")
    os.makedirs(out_dir, exist_ok=True)
    partitioned_path = save_scripted(part.module, os.path.join(out_dir, "model_partitioned.pt"))
    result = {
        "model": path,
        "inputs": [s.to_json() for s in specs],
        "target": info.to_json(),
        "num_outputs": num_outputs,
        "timings_s": {"import": import_s, "build": build_s},
        "verification": verification,
        "threads": threads,
        "files": {"partitioned": partitioned_path},
        "fallback": {"reason": import_error.message, "code": import_error.code},
        "coverage": part.coverage,
    }
    if params.get("measure", True) and not not_runnable:
        ctx.progress("measure", "measuring latency (PyTorch)", 0.0)
        sample = random_inputs(specs, sets[0])
        torch_lat = latency.time_torch(module, sample)
        ctx.progress("measure", "measuring latency (partly compiled)", 0.5)
        tvm_lat = latency.time_torch(part.module, sample)
        result["latency_ms"] = json_safe({"torch": torch_lat, "tvm": tvm_lat, "ratio": tvm_lat["p50"] / torch_lat["p50"] if torch_lat["p50"] > 0 else None})
    export_path = params.get("export_path")
    if export_path:
        if not verification.get("ok", True) and not params.get("export_unverified"):
            why = verification["reason"] if verification.get("skipped") else "the partly compiled model's outputs differ from PyTorch's beyond tolerance"
            result["export_skipped"] = f"Not exported: {why} (pass export_unverified to export anyway)."
            ctx.log(result["export_skipped"], "warning")
        else:
            ctx.progress("export", f"writing the partly compiled model to {export_path}")
            result["files"]["exported"] = save_scripted(part.module, export_path)
    result["_partitioned"] = part
    result["_info"] = info
    return result
