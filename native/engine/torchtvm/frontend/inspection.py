"""Inspection of a TorchScript model: inputs, op histogram, parameters, embedded export metadata."""

from __future__ import annotations

import collections
from typing import Any

import torch

from torchtvm.common import runtime_library as runtime
from torchtvm.common.specs import TORCH_TO_NAME, InputSpec, parse_specs
from torchtvm.frontend.graph import (
    graph_shapes,
    model_graph,
    program_graph,
    with_shapes,
)
from torchtvm.frontend.importer import program_specs
from torchtvm.frontend.loader import is_exported, load_model


def _input_info(module: torch.jit.ScriptModule) -> list[dict]:
    schema = module.forward.schema  # type: ignore[attr-defined]  # forward is a ScriptMethod; the stubs say Callable
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
                dt = t.dtype()
                if dt is not None and dt in TORCH_TO_NAME:
                    info["dtype"] = TORCH_TO_NAME[dt]
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
def default_specs(module: torch.jit.ScriptModule):
    """Input specs the model itself states: a traced graph's recorded input sizes and dtypes.
    None when any input lacks them."""

    specs = []
    for info in _input_info(module):
        shape, dtype = info.get("shape"), info.get("dtype")
        if not shape or dtype is None or any(d is None or d < 1 for d in shape):
            return None
        specs.append(InputSpec(info["name"], tuple(int(d) for d in shape), dtype))
    return specs or None


def inspect_module(module: torch.jit.ScriptModule, specs=None) -> dict:
    params = list(module.parameters())
    buffers = list(module.buffers())
    result: dict[str, Any] = {
        "inputs": _input_info(module),
        "ops": op_histogram(module),
        "parameters": {
            "count": int(sum(p.numel() for p in params)),
            "bytes": int(sum(p.numel() * p.element_size() for p in params + buffers)),
            "tensors": len(params) + len(buffers),
        },
        "exported": None,
    }

    meta = runtime.exported_metadata(module)
    if meta is not None:
        result["exported"] = meta
    try:
        result["graph"] = model_graph(module)
    except Exception:  # the graph view is optional: never let it fail an inspection
        pass
    specs = specs or default_specs(module)
    if specs and "graph" in result:
        try:
            with_shapes(result["graph"], graph_shapes(module, specs), specs)
        except Exception:  # shapes are a bonus: the graph shows without them
            pass
    return result


def inspect_program(ep) -> dict:
    """A torch.export program: its user inputs (dynamic dims as symbols with their ranges, which
    are also the default input specs) and the histogram of its aten ops."""
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
    result = {
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
    try:
        result["graph"] = program_graph(ep, specs)
    except Exception:  # the graph view is optional: never let it fail an inspection
        pass
    return result


def inspect_file(path: str, inputs=None) -> dict:
    """`inputs`: input specs (JSON) to give the graph's ops their output shapes; without them, the
    model's own (a traced graph's recorded sizes) are used where it states them."""

    model = load_model(path)
    specs = parse_specs(inputs) if inputs else None
    result = inspect_program(model) if is_exported(model) else inspect_module(model, specs)
    result["path"] = path
    return result
