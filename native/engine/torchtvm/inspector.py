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
