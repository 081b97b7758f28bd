"""Inspection of a TorchScript model: inputs, op histogram, parameters, embedded export metadata."""

from __future__ import annotations

import collections

import torch

from .loader import load_torchscript
from .specs import TORCH_TO_NAME


def _input_info(module: torch.jit.ScriptModule) -> list[dict]:
    schema = module.forward.schema
    graph_inputs = list(module.graph.inputs())[1:]
    out = []
    for i, arg in enumerate(schema.arguments[1:]):
        info = {"name": arg.name, "type": str(arg.type)}
        if i < len(graph_inputs):
            t = graph_inputs[i].type()
            if isinstance(t, torch._C.TensorType):
                sizes = t.sizes()
                if sizes is not None:
                    info["shape"] = list(sizes)
                if t.dtype() is not None and t.dtype() in TORCH_TO_NAME:
                    info["dtype"] = TORCH_TO_NAME[t.dtype()]
        out.append(info)
    return out


def op_histogram(module: torch.jit.ScriptModule) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()

    def visit(block):
        for node in block.nodes():
            kind = node.kind()
            if not kind.startswith("prim::") or kind in ("prim::If", "prim::Loop", "prim::CallMethod", "prim::CallFunction"):
                counts[kind] += 1
            for b in node.blocks():
                visit(b)

    visit(module.inlined_graph)
    return dict(counts.most_common())


# Nodes that only carry values around (constants, attribute reads, list packing, size queries):
# the graph view draws the ops, and edges go straight from producer op to consumer op.
_PLUMBING = {
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
        if t.dtype() is not None and t.dtype() in TORCH_TO_NAME:
            info["dtype"] = TORCH_TO_NAME[t.dtype()]
    return info


def _scope(node) -> str | None:
    # Traced graphs name the submodule a node came from: "__module.layer1/__module.layer1.0.conv1".
    name = node.scopeName()
    if not name:
        return None
    last = name.split("/")[-1]
    return last[len("__module."):] if last.startswith("__module.") else last


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
        if n.kind() in _PLUMBING:
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


def inspect_module(module: torch.jit.ScriptModule) -> dict:
    params = list(module.parameters())
    buffers = list(module.buffers())
    result = {
        "inputs": _input_info(module),
        "ops": op_histogram(module),
        "parameters": {
            "count": int(sum(p.numel() for p in params)),
            "bytes": int(sum(p.numel() * p.element_size() for p in params + buffers)),
            "tensors": len(params) + len(buffers),
        },
        "exported": None,
    }
    from . import runtime

    meta = runtime.exported_metadata(module)
    if meta is not None:
        result["exported"] = meta
    try:
        result["graph"] = model_graph(module)
    except Exception:  # the graph view is optional: never let it fail an inspection
        pass
    return result


def inspect_program(ep) -> dict:
    """A torch.export program: its user inputs (dynamic dims as symbols with their ranges, which
    are also the default input specs) and the histogram of its aten ops."""
    from .importer import program_specs

    counts: collections.Counter[str] = collections.Counter()
    for node in ep.graph.nodes:
        if node.op == "call_function":
            t = node.target
            # "aten::linear", as the TorchScript histogram names ops; Python operators by name.
            counts[t._schema.name if isinstance(t, torch._ops.OpOverload) else getattr(t, "__name__", str(t))] += 1
    params = list(ep.state_dict.values()) + [t for t in ep.constants.values() if isinstance(t, torch.Tensor)]
    specs = program_specs(ep)
    inputs = []
    for s in specs:
        info = {"name": s.name, "type": "Tensor", "dtype": s.dtype, "spec": s.to_json()}
        if s.is_static:
            info["shape"] = list(s.dims)
        inputs.append(info)
    return {
        "format": "pt2",
        "inputs": inputs,
        "ops": dict(counts.most_common()),
        "parameters": {
            "count": int(sum(p.numel() for p in ep.parameters())),
            "bytes": int(sum(p.numel() * p.element_size() for p in params)),
            "tensors": len(params),
        },
        "exported": None,
    }


def inspect_file(path: str) -> dict:
    from .loader import is_exported, load_model

    model = load_model(path)
    result = inspect_program(model) if is_exported(model) else inspect_module(model)
    result["path"] = path
    return result
