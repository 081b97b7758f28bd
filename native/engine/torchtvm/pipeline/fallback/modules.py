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

from dataclasses import dataclass

import torch

from torchtvm.common.errors import EngineError
from torchtvm.common.specs import InputSpec, SymDim, random_inputs
from torchtvm.pipeline.fallback.torchscript import (
    CAPTURE_LIST,
    TENSOR,
    TENSOR_LIST,
    Capture,
    Compiled,
    Partitioned,
    compile_child,
    derive_specs,
    first_sentence,
    fresh_copy,
    insert_forward_call,
    median_ms,
    walk,
)

_CAPTURE_PREFIX = "_torchtvm_capture_"
ATTR_PREFIX = "torchtvm_"  # attribute holding a child's compiled module: torchtvm_<child path>


# -- graph helpers --------------------------------------------------------------------------------


def count_ops(module) -> int:
    """aten:: nodes in the fully inlined forward graph (loop and if bodies included)."""
    g = module.forward.graph.copy()
    torch._C._jit_pass_inline(g)
    return sum(1 for n in walk(g) if n.kind().startswith("aten::"))


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
    for n in walk(graph):
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
            m._c._register_attribute(attr, CAPTURE_LIST, [])
            lst = graph.create("prim::ListConstruct", list(node.inputs())[1:])
            lst.output().setType(TENSOR_LIST)
            lst.insertBefore(node)
            get = graph.create("prim::GetAttr", [self_v])
            get.s_("name", attr)
            get.output().setType(CAPTURE_LIST)
            get.insertBefore(node)
            app = graph.create("aten::append", [get.output(), lst.output()])
            app.output().setType(CAPTURE_LIST)
            app.insertBefore(node)
        torch._C._jit_pass_lint(graph)


def take_captures(module, site: Site) -> list[list[torch.Tensor]]:
    m = _submodule(module, site.owner)
    attr = _capture_attr(site)
    got = [list(x) for x in m._c.getattr(attr)]
    m._c.setattr(attr, [])
    return got


# -- 2. specs from captured shapes ----------------------------------------------------------------


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
        item.output().setType(TENSOR)
        item.insertBefore(node)
        new = item.output()
    else:
        unpack = graph.create("prim::ListUnpack", [call.output()], site.n_out)
        for o in unpack.outputs():
            o.setType(TENSOR)
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


# -- the partition --------------------------------------------------------------------------------


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def partition(module: torch.jit.ScriptModule, specs: list[InputSpec], shape_sets: list[list[tuple[int, ...]]], info,
              model_path: str | None = None, progress=lambda msg, frac=None: None, check_cancelled=lambda: None) -> Partitioned:
    """Compile every child (searching deeper below children that fail) and rewrite a copy of the
    model to call the compiled ones. `shape_sets[0]` are the sizes timing and coverage use."""
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
                entry["reason"] = f"Not compiled: {first_sentence(e)}"
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
    whole_ms = median_ms(lambda: reference(*sample), repeat)
    # Calling a child from Python costs a dispatch that the call inside the graph does not pay;
    # measure it on a trivial scripted module and take it off each call.
    identity = torch.jit.script(_Identity())
    probe = sample[0]
    per_call_ms = median_ms(lambda: [identity(probe) for _ in range(10)], repeat) / 10
    for path, c in compiled.items():
        child = _submodule(reference, path)
        calls = [cap.tensors for cap in captures[path] if cap.run == 0]

        def run_calls(child=child, calls=calls):
            for args in calls:
                child(*args)

        c.ts_ms = max(0.0, median_ms(run_calls, repeat) - per_call_ms * len(calls))
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
