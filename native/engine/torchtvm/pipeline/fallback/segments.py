"""Graph-level fallback: compile maximal runs of importable TorchScript nodes, loop and branch
bodies included, and keep everything else (loops, ifs, int arithmetic, unsupported ops) in
TorchScript.

Where module-level fallback (modules.py) can only swap whole `self.child(...)` calls, this works
on the frozen, inlined forward graph: in every block (the top level, each prim::Loop body and
prim::If branch) a run of consecutive aten nodes whose inputs are tensors or constants and whose
outputs are tensors is one segment. A node that takes a value TorchScript computes at run time as
a non-tensor (the loop counter, a size) or whose op TVM has no importer for ends the run. So a loop
over `x.size(1)` runs its whole body except the indexing by the counter in TVM.

Each segment becomes a standalone TorchScript function (its constants, the frozen weights
included, cloned in), is captured with the inputs it sees at the verification sizes, compiled and
checked on them through the ordinary import path (torchscript.compile_child), and its nodes are
replaced by a call to the compiled module (torch.classes.torchtvm.Module), as module-level
fallback does for a submodule call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

# Ops that only view or reshape: a segment of nothing else is not worth a call into TVM.
_TRIVIAL = {"aten::slice", "aten::select", "aten::view", "aten::reshape", "aten::transpose", "aten::permute", "aten::unsqueeze",
            "aten::squeeze", "aten::contiguous", "aten::expand", "aten::t", "aten::flatten", "aten::detach", "aten::to",
            "aten::dropout", "aten::clone", "aten::alias", "aten::expand_as", "aten::view_as", "prim::ListConstruct"}
_ATTR = "torchtvm_segment"


@dataclass
class Segment:
    index: int
    nodes: list  # torch._C.Node, consecutive in one block
    inputs: list  # torch._C.Value defined outside, tensors
    outputs: list  # torch._C.Value used after the segment, tensors
    where: str
    function: object = None
    captures: list = field(default_factory=list)
    ops: list = field(default_factory=list)  # aten kinds, kept after the nodes are replaced

    def __post_init__(self):
        self.ops = [n.kind() for n in self.nodes if n.kind().startswith("aten::")]

    @property
    def name(self) -> str:
        return f"segment{self.index}"


def _is_free(v) -> bool:
    """Constants (and lists of constants) are cloned into a segment rather than passed in."""
    n = v.node()
    if n.kind() == "prim::Constant":
        return True
    return n.kind() == "prim::ListConstruct" and all(_is_free(i) for i in n.inputs())


def _importable(node, excluded: set[str]) -> bool:
    kind = node.kind()
    if list(node.blocks()):
        return False
    if kind == "prim::ListConstruct":
        return node.output().type().kind() == "ListType" and all(i.type().kind() == "TensorType" or _is_free(i) for i in node.inputs())
    if not kind.startswith("aten::") or kind in excluded:
        return False
    if any(o.type().kind() != "TensorType" for o in node.outputs()):
        return False
    for v in node.inputs():
        t = v.type().kind()
        if t == "TensorType" or _is_free(v):
            continue
        if t == "ListType" and v.node().kind() == "prim::ListConstruct" and _importable(v.node(), excluded):
            continue  # a list of tensors built just before (aten::cat's input)
        return False
    return True


def find_segments(graph, excluded: set[str]) -> list[Segment]:
    segments: list[Segment] = []

    def close(run, where):
        if not run or all(n.kind() in _TRIVIAL for n in run):
            return
        inside = set()
        for n in run:
            for o in n.outputs():
                inside.add(o.unique())
        inputs, seen = [], set()
        for n in run:
            for v in n.inputs():
                if v.unique() in inside or _is_free(v) or v.unique() in seen:
                    continue
                if v.type().kind() != "TensorType":
                    return  # a list built outside the run: leave the run in TorchScript
                seen.add(v.unique())
                inputs.append(v)
        run_set = set(id(n) for n in run)
        outputs = []
        for n in run:
            for o in n.outputs():
                if any(not _same(u.user, run) for u in o.uses()):
                    if o.type().kind() != "TensorType":
                        return
                    outputs.append(o)
        if not inputs or not outputs:
            return
        del run_set
        segments.append(Segment(len(segments), list(run), inputs, outputs, where))

    def visit(block, where):
        run = []
        for n in block.nodes():
            if n.kind() == "prim::Constant" or (n.kind() == "prim::ListConstruct" and _is_free(n.output())):
                continue  # cloned where needed; does not end a run
            if _importable(n, excluded):
                run.append(n)
                continue
            close(run, where)
            run = []
            for b in n.blocks():
                visit(b, "loop body" if n.kind() == "prim::Loop" else "branch" if n.kind() == "prim::If" else where)
        close(run, where)

    visit(graph.block() if hasattr(graph, "block") else graph, "forward")
    return segments


def _same(user, run) -> bool:
    return any(user is n or user == n for n in run)


def build_function(seg: Segment):
    """A standalone TorchScript function computing the segment's outputs from its inputs."""
    g = torch._C.Graph()
    env = {}
    for v in seg.inputs:
        nv = g.addInput()
        nv.setType(v.type())
        env[v.unique()] = nv

    def lookup(v):
        if v.unique() in env:
            return env[v.unique()]
        if _is_free(v):  # clone constants (and constant lists) on first use
            src = v.node()
            clone = g.createClone(src, lookup)
            g.insertNode(clone)
            env[v.unique()] = clone.output()
            return clone.output()
        raise EngineError("segment_failed", f"Value %{v.debugName()} used in {seg.name} is defined outside it.")

    for n in seg.nodes:
        clone = g.createClone(n, lookup)  # type: ignore[attr-defined]  # torch._C.Graph binding missing from the stubs
        g.insertNode(clone)
        for o, no in zip(n.outputs(), clone.outputs()):
            env[o.unique()] = no
    outs = [env[o.unique()] for o in seg.outputs]
    if len(outs) == 1:
        g.registerOutput(outs[0])
    else:
        tup = g.createTuple(outs) if hasattr(g, "createTuple") else None
        if tup is None:
            tup = g.create("prim::TupleConstruct", outs)  # type: ignore[call-arg]  # num_outputs defaults to 1 in the binding; the stub requires it
            tup.output().setType(torch._C.TupleType([o.type() for o in outs]))
        g.insertNode(tup)
        g.registerOutput(tup.output())
    torch._C._jit_pass_lint(g)
    return torch._C._create_function_from_graph(seg.name, g)


def _capture_attr(seg: Segment) -> str:
    return f"_torchtvm_capture_seg{seg.index}"


def instrument(module, graph, segments: list[Segment]) -> list:
    """Before each segment, append its inputs to a List[List[Tensor]] attribute; returns the
    inserted nodes (removed again after the capture runs)."""
    self_v = next(iter(graph.inputs()))
    added = []
    for seg in segments:
        first = seg.nodes[0]
        module._c._register_attribute(_capture_attr(seg), CAPTURE_LIST, [])
        lst = graph.create("prim::ListConstruct", seg.inputs)
        lst.output().setType(TENSOR_LIST)
        lst.insertBefore(first)
        get = graph.create("prim::GetAttr", [self_v])
        get.s_("name", _capture_attr(seg))
        get.output().setType(CAPTURE_LIST)
        get.insertBefore(first)
        app = graph.create("aten::append", [get.output(), lst.output()])
        app.output().setType(CAPTURE_LIST)
        app.insertBefore(first)
        added += [app, get, lst]
    torch._C._jit_pass_lint(graph)
    return added


def rewrite(module, graph, seg: Segment, obj) -> None:
    self_v = next(iter(graph.inputs()))
    attr = f"{_ATTR}{seg.index}"
    cls_type = obj._type()
    module._c._register_attribute(attr, cls_type, obj)
    first = seg.nodes[0]
    _, _, call = insert_forward_call(graph, self_v, attr, cls_type, seg.inputs, first)
    unpack = graph.create("prim::ListUnpack", [call.output()], len(seg.outputs))
    for o in unpack.outputs():
        o.setType(TENSOR)
    unpack.insertBefore(first)
    for old, new in zip(seg.outputs, unpack.outputs()):
        old.replaceAllUsesWith(new)
    for n in reversed(seg.nodes):
        n.destroy()


def partition_graph(module, specs: list[InputSpec], shape_sets, info, model_path=None, excluded_ops=(), progress=lambda m, f=None: None,
                    check_cancelled=lambda: None) -> Partitioned:
    """Compile every importable segment of the frozen forward graph; see the module docstring.
    `excluded_ops`: aten op names (e.g. "special_i0e.default") known to have no importer."""

    excluded = {"aten::" + op.split(".")[0] for op in excluded_ops if op}
    with torch.no_grad():
        frozen = torch.jit.freeze(fresh_copy(module).eval())
    reference = fresh_copy(frozen)  # untouched, for timing and the comparison
    graph = frozen.graph
    ops_total = sum(1 for n in walk(graph) if n.kind().startswith("aten::"))
    segments = find_segments(graph, excluded)
    if not segments:
        raise EngineError("fallback_nothing", "No run of importable ops was found in the model's graph.")
    for seg in segments:
        seg.function = build_function(seg)

    # 1. capture each segment's inputs at the verification sizes
    added = instrument(frozen, graph, segments)
    user_syms: dict[str, SymDim] = {}
    for s in specs:
        for d in s.dims:
            if isinstance(d, SymDim):
                user_syms.setdefault(d.name, d)
    run_symbols = []
    progress("running the model to capture each segment's inputs")
    with torch.no_grad():
        for r, shapes in enumerate(shape_sets):
            inputs = random_inputs(specs, shapes, seed=r)
            run_symbols.append({d.name: int(t.shape[j]) for s, t in zip(specs, inputs) for j, d in enumerate(s.dims) if isinstance(d, SymDim)})
            frozen(*inputs)
            for seg in segments:
                got = [list(x) for x in frozen._c.getattr(_capture_attr(seg))]
                frozen._c.setattr(_capture_attr(seg), [])
                seg.captures.extend(Capture(r, ts) for ts in got)
    for n in added:
        n.destroy()

    # 2. compile and check each segment
    report: list[dict[str, Any]] = []
    compiled: dict[str, tuple[Segment, Compiled]] = {}
    for seg in segments:
        check_cancelled()
        entry = {"name": seg.name, "where": seg.where, "ops": seg.ops, "compiled": False}
        report.append(entry)
        if not seg.captures:
            entry["reason"] = "Not compiled: it did not run on the sample inputs."
            continue
        progress(f"compiling {seg.name} ({seg.where}: {len(seg.ops)} ops)")
        try:
            seg_specs = derive_specs(seg.name, seg.captures, run_symbols, user_syms)
            c = compile_child(seg.function, seg.name, seg_specs, seg.captures, info, model_path)
        except Exception as e:
            entry["reason"] = f"Not compiled: {first_sentence(e)}"
            continue
        if c.num_outputs != len(seg.outputs) or not c.check["ok"]:
            entry["reason"] = "Not compiled: its TVM outputs differ from TorchScript's on the captured inputs." if c.num_outputs == len(seg.outputs) else "Not compiled: output count differs."
            continue
        entry.update(compiled=True, inputs=[s.to_json() for s in seg_specs], seconds=round(c.seconds, 3))
        compiled[seg.name] = (seg, c)
    if not compiled:
        reasons = "; ".join(f"{e['name']}: {e['reason'].replace('Not compiled: ', '')}" for e in report)
        raise EngineError("fallback_nothing", f"No segment of the model's graph could be compiled with TVM ({reasons}).")

    # 3. rewrite
    progress("rewriting the TorchScript graph to call the compiled segments")
    for seg, c in compiled.values():
        rewrite(frozen, graph, seg, c.runtime_object)
    torch._C._jit_pass_lint(graph)
    final = fresh_copy(frozen)  # proves save/load of the rewritten graph works

    # 4. coverage: ops, and the share of TorchScript's time the compiled segments took
    sample = random_inputs(specs, shape_sets[0], seed=0)
    whole_ms = median_ms(lambda: reference(*sample), 20)
    seg_ms = 0.0
    for seg, c in compiled.values():
        calls = [cap.tensors for cap in seg.captures if cap.run == 0]
        fn = seg.function
        ms = median_ms(lambda calls=calls, fn=fn: [fn(*a) for a in calls], 20)
        c.ts_ms = ms
        seg_ms += ms
        next(e for e in report if e["name"] == seg.name)["torchscript_ms"] = round(ms, 4)
    share = min(1.0, seg_ms / whole_ms) if whole_ms > 0 else 0.0
    ops_compiled = sum(len(seg.ops) for seg, _c in compiled.values())
    coverage: dict[str, Any] = {
        "level": "graph",
        "ops_total": ops_total,
        "ops_compiled": ops_compiled,
        "time_share_compiled": round(share, 4),
        "torchscript_ms": round(whole_ms, 4),
        "segments": report,
        "modules": [{"name": f"{e['name']} ({e['where']}: {', '.join(o.replace('aten::', '') for o in e['ops'])})", **{k: v for k, v in e.items() if k != "name"}} for e in report],
    }
    return Partitioned(final, {k: c for k, (s, c) in compiled.items()}, coverage["modules"], coverage)
