"""The model's graph as the graph view draws it: TorchScript or torch.export ops as a DAG, with each
op's output shapes and dtypes for given input specs (run on fake tensors, so any size costs nothing).
provenance.py names the same nodes, so the compiler's placement can be drawn on them."""

from __future__ import annotations

import re

import torch

from torchtvm.common.specs import TORCH_TO_NAME, SymDim

PLUMBING = {
    "prim::Constant", "prim::GetAttr", "prim::ListConstruct", "prim::ListUnpack", "prim::TupleConstruct",
    "prim::TupleUnpack", "prim::NumToTensor", "aten::Int", "aten::size", "prim::device", "prim::dtype",
    "aten::ScalarImplicit", "aten::detach", "prim::unchecked_cast",
}
GRAPH_NODE_LIMIT = 3000


def _value_info(v) -> dict:
    t = v.type()
    info: dict = {}
    if isinstance(t, torch._C.TensorType):
        sizes = t.sizes()
        if sizes is not None:
            info["shape"] = [int(d) if d is not None else None for d in sizes]
        dt = t.dtype()
        if dt is not None and dt in TORCH_TO_NAME:
            info["dtype"] = TORCH_TO_NAME[dt]
    return info


_HIERARCHY_PART = re.compile(r"([^.()]+)\([^()]*\)")


def _scope(node) -> str | None:
    """The submodule path a node came from ("layer1.0.conv1"). Traced graphs name it as
    "__module.layer1/__module.layer1.0.conv1" (the last part is the path); graphs that went through
    TorchScript-to-export conversion as "ResNet::/Sequential::layer1/BasicBlock::0/Conv2d::conv1"
    (the path is the attribute names, one per part). A saved and loaded model keeps no scope names,
    but its inlined graph knows each node's module hierarchy: "layer1(Sequential).0(BasicBlock).conv1(Conv2d)"."""
    name = node.scopeName()
    if not name:
        try:
            hierarchy = node.getModuleHierarchy()
        except Exception:  # older torch, or a node without an inlined call stack
            return None
        path = ".".join(_HIERARCHY_PART.findall(hierarchy or ""))
        return path or None
    parts = name.split("/")
    last = parts[-1]
    if last.startswith("__module."):
        return last[len("__module."):]
    if "::" in last:
        path = ".".join(p.split("::", 1)[1] for p in parts if "::" in p and p.split("::", 1)[1])
        return path or None
    return last


def model_graph(module: torch.jit.ScriptModule) -> dict:
    """The model's ops as a DAG for the graph view: id, op kind, producer ids, output shapes/dtypes
    where the TorchScript graph records them (traced graphs do), and the submodule scope.
    Loop and branch bodies stay inside their prim::Loop / prim::If node."""
    g = module.inlined_graph
    nodes: list[dict] = []
    producer: dict[int, list[str]] = {}
    for i, v in enumerate(list(g.inputs())[1:]):
        nid = f"in{i}"
        nodes.append({"id": nid, "op": "input", "name": v.debugName(), "inputs": [], "outputs": [_value_info(v)]})
        producer[v.unique()] = [nid]
    truncated = False
    for n in g.nodes():
        srcs: list[str] = []
        for v in n.inputs():
            for p in producer.get(v.unique(), []):
                if p not in srcs:
                    srcs.append(p)
        if n.kind() in PLUMBING:
            for o in n.outputs():
                producer[o.unique()] = srcs
            continue
        if len(nodes) >= GRAPH_NODE_LIMIT:
            truncated = True
            break
        nid = f"n{len(nodes)}"
        node = {"id": nid, "op": n.kind(), "inputs": srcs, "outputs": [_value_info(o) for o in n.outputs()]}
        scope = _scope(n)
        if scope:
            node["scope"] = scope
        nodes.append(node)
        for o in n.outputs():
            producer[o.unique()] = [nid]
    outs: list[str] = []
    for v in g.outputs():
        outs += [p for p in producer.get(v.unique(), []) if p not in outs]
    nodes.append({"id": "out", "op": "output", "inputs": outs, "outputs": []})
    return {"nodes": nodes, "truncated": truncated}


# ---- per-node output shapes ----------------------------------------------------------------


def _probe_function(module: torch.jit.ScriptModule):
    """The model's inlined graph returning every top-level op's tensor outputs as one list, as a
    callable, with (graph node id, output index) per list entry. Node ids are model_graph's."""
    g = module.inlined_graph
    where: list[tuple[str, int]] = []
    vals = []
    count = len(list(g.inputs())) - 1  # model_graph numbers inputs first
    for n in g.nodes():
        if n.kind() in PLUMBING:
            continue
        if count >= GRAPH_NODE_LIMIT:
            break
        nid = f"n{count}"
        count += 1
        for k, o in enumerate(n.outputs()):
            if isinstance(o.type(), torch._C.TensorType):
                vals.append(o)
                where.append((nid, k))
    lst = g.create("prim::ListConstruct", vals, 1)
    lst.output().setType(torch._C.ListType(torch._C.TensorType.get()))
    g.insertNode(lst)
    lst.moveBefore(g.return_node())
    g.eraseOutput(0)
    g.registerOutput(lst.output())
    fn = torch._C._create_function_from_graph("torchtvm_shape_probe", g)
    return (lambda inputs: fn(module._c, *inputs)), where


def _fit(points: list[tuple[int, int]]):
    """y = a*x + c through all points, a and c rational; None when they do not lie on a line."""
    from fractions import Fraction

    (x0, y0), (x1, y1) = points[0], points[1]
    a = Fraction(y1 - y0, x1 - x0)
    c = y0 - a * x0
    if any(a * x + c != y for x, y in points):
        return None
    return a, c


def _sym_text(name: str, a, c) -> str | None:
    if a == 0:
        return None
    if a.denominator == 1:
        head = name if a == 1 else f"{a.numerator}*{name}"
    elif a.numerator == 1 and c == 0:
        return f"{name}/{a.denominator}"
    else:
        return None
    if c.denominator != 1:
        return None
    return head if c == 0 else f"{head}+{int(c)}" if c > 0 else f"{head}-{int(-c)}"


def graph_shapes(module: torch.jit.ScriptModule, specs) -> dict[str, list[dict]]:
    """Output shape and dtype of every op of model_graph, from running the model on the input
    specs: on fake tensors (no memory, no compute, any size), or on zeros where an op needs real
    data and the specs are static. A symbolic dim shows as its symbol (or a linear expression of
    it, `2*seq`, `batch/2`): the model runs once at a base size and once more per symbol at other
    sizes, and each output dim is fitted to the symbol that moves it. Empty when it cannot run."""

    run, where = _probe_function(module)
    syms: dict[str, SymDim] = {}
    for s in specs:
        for d in s.dims:
            if isinstance(d, SymDim):
                syms.setdefault(d.name, d)

    def pick(d: SymDim, want: int) -> int:
        return max(d.min, min(d.max, want))

    base = {n: pick(d, 224) for n, d in syms.items()}
    variants: list[tuple[str | None, dict]] = [(None, base)]
    for n, d in list(syms.items())[:4]:
        seen = {base[n]}
        for step in (32, 64, -32, -64, 1, 2, -1, -2):
            v = pick(d, base[n] + step)
            if v not in seen and len(seen) < 3:
                seen.add(v)
                variants.append((n, {**base, n: v}))

    def inputs(values: dict, make) -> list[torch.Tensor]:
        return [make(tuple(values[d.name] if isinstance(d, SymDim) else d for d in s.dims), s.torch_dtype) for s in specs]

    def shapes(values: dict):
        from torch._subclasses.fake_tensor import FakeTensorMode

        with torch.no_grad():
            try:
                with FakeTensorMode(allow_non_fake_inputs=True):
                    out = run(inputs(values, lambda shp, dt: torch.empty(shp, dtype=dt)))
                    return [(tuple(int(x) for x in t.shape), t.dtype) for t in out]
            except Exception:
                if syms:
                    raise
                out = run(inputs(values, lambda shp, dt: torch.zeros(shp, dtype=dt)))
                return [(tuple(t.shape), t.dtype) for t in out]

    try:
        runs = [(sym, shapes(values), values) for sym, values in variants]
    except Exception:
        return {}
    first = runs[0][1]
    result: dict[str, list[dict]] = {}
    for i, (nid, k) in enumerate(where):
        shp, dt = first[i]
        dims: list = []
        for j, b in enumerate(shp):
            moved: dict[str, list[tuple[int, int]]] = {}
            for sym, out, values in runs[1:]:
                assert sym is not None  # only the base run (runs[0]) varies no symbol
                other = out[i][0]
                if len(other) != len(shp):
                    moved.setdefault("?", [])
                    continue
                if other[j] != b:
                    moved.setdefault(sym, [(base[sym], b)]).append((values[sym], other[j]))
            if not moved:
                dims.append(int(b))
                continue
            if len(moved) == 1 and "?" not in moved:
                (sym, pts), = moved.items()
                fit = _fit(pts)
                dims.append(_sym_text(sym, *fit) if fit else None)
            else:
                dims.append(None)
        outs = result.setdefault(nid, [])
        while len(outs) <= k:
            outs.append({})
        outs[k] = {"shape": dims, **({"dtype": TORCH_TO_NAME[dt]} if dt in TORCH_TO_NAME else {})}
    return result


def with_shapes(graph: dict, shapes: dict[str, list[dict]], specs) -> dict:
    """The graph with each op's outputs (and the inputs) given their shapes from `graph_shapes`."""
    if not shapes:
        return graph
    ins = [n for n in graph["nodes"] if n["op"] == "input"]
    for n, s in zip(ins, specs):
        n["outputs"] = [{"shape": [d if isinstance(d, int) else d.name for d in s.dims], "dtype": s.dtype}]
    for n in graph["nodes"]:
        if n["id"] in shapes:
            n["outputs"] = shapes[n["id"]]
    graph["shapes_for"] = [s.to_json() for s in specs]
    return graph


def _fx_op(t) -> str:
    # "aten::linear", as the TorchScript histogram names ops; Python operators by name.
    return t._schema.name if isinstance(t, torch._ops.OpOverload) else getattr(t, "__name__", str(t))


def _fx_scope(n) -> str | None:
    """The submodule path of a torch.export node ("layer1.0.conv1"): the innermost entry of its
    nn_module_stack, written as an attribute path ("L['self'].layer1[0]" becomes "layer1.0")."""
    stack = n.meta.get("nn_module_stack") or {}
    for path, _ in reversed(list(stack.values())):
        if not isinstance(path, str) or not path:
            continue
        path = re.sub(r"^L\[['\"]self['\"]\]\.?", "", path)
        path = re.sub(r"\[['\"]?([^'\"\]]+)['\"]?\]", r".\1", path).replace("._modules.", ".").strip(".")
        return path or None
    return None


def program_graph(ep, specs) -> dict:
    """A torch.export program's ops as the graph view's DAG. Node ids are the FX node names (which
    the compiler's placement report names too); shapes and dtypes come from the program's own
    metadata, its symbolic dims under the names of the default input specs ('batch', '2*batch')."""
    import operator

    user = list(ep.graph_signature.user_inputs)
    # torch's symbols (s0, s1...) -> the spec names program_specs gave them, by position.
    rename: dict = {}
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    for name, spec in zip(user, specs):
        val = placeholders[name].meta.get("val") if name in placeholders else None
        for d, sd in zip(getattr(val, "shape", ()), spec.dims):
            if isinstance(sd, SymDim) and not isinstance(d, int):
                for sym in d.node.expr.free_symbols:
                    rename.setdefault(sym, __import__("sympy").Symbol(sd.name))

    def dim(d):
        if isinstance(d, int):
            return d
        try:
            expr = d.node.expr
            return int(expr) if expr.is_number else str(expr.xreplace(rename)).replace(" ", "")
        except Exception:
            return None

    def info(val) -> list[dict]:
        vals = val if isinstance(val, (list, tuple)) else [val]
        out = []
        for v in vals:
            if isinstance(v, torch.Tensor):
                out.append({"shape": [dim(d) for d in v.shape], **({"dtype": TORCH_TO_NAME[v.dtype]} if v.dtype in TORCH_TO_NAME else {})})
            else:
                out.append({})
        return out

    nodes: list[dict] = []
    producer: dict = {}
    truncated = False
    for n in ep.graph.nodes:
        if n.op == "placeholder":
            if n.name in user:
                nid = f"in{user.index(n.name)}"
                nodes.append({"id": nid, "op": "input", "name": n.name, "inputs": [], "outputs": info(n.meta.get("val"))})
                producer[n] = [nid]
            continue
        srcs: list[str] = []
        for a in n.all_input_nodes:
            for p in producer.get(a, []):
                if p not in srcs:
                    srcs.append(p)
        if n.op == "output":
            nodes.append({"id": "out", "op": "output", "inputs": srcs, "outputs": []})
            continue
        if n.op != "call_function" or n.target is operator.getitem:
            producer[n] = srcs  # plumbing: a tuple's element is its producer's output
            continue
        if len(nodes) >= GRAPH_NODE_LIMIT:
            truncated = True
            continue
        node = {"id": n.name, "op": _fx_op(n.target), "inputs": srcs, "outputs": info(n.meta.get("val"))}
        scope = _fx_scope(n)
        if scope:
            node["scope"] = scope
        nodes.append(node)
        producer[n] = [n.name]
    if not nodes or nodes[-1]["op"] != "output":
        nodes.append({"id": "out", "op": "output", "inputs": [], "outputs": []})
    return {"nodes": nodes, "truncated": truncated, "shapes_for": [s.to_json() for s in specs]}
