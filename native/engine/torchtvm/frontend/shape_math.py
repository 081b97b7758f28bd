"""Integer scalar and shape arithmetic in an ExportedProgram, made importable by TVM.

Traced and scripted models compute scales from shapes (`(d // heads) ** 0.5`, `x.size(1)`,
`numel`): TorchScript records them as ops on 0-d int64 tensors (`prim::NumToTensor`,
`aten::floor_divide`, `aten::pow`), and they reach TVM as such. TVM's importer then fails (int pow,
int64 tensor against an int32 constant). Before translation this pass:

1. constant-folds every pure op whose inputs are all known (static sizes), replacing the result
   with a literal or a 0-d `scalar_tensor`; asserts that fold to true disappear;
2. inserts the casts torch's type promotion implies where a result's dtype differs from an input's
   (int64 ** 0.5 -> float32), and turns Python number operands of integer ops into 0-d tensors of
   the result's dtype (TVM would make them int32);
3. `scalar_tensor` of a symbolic size (kept symbolic, not folded) is imported through
   `scalar_tensor_converter` below.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import fx

aten = torch.ops.aten

# Ops whose result follows torch's type promotion from their tensor inputs.
_PROMOTING = {
    aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar,
    aten.div.Tensor, aten.div.Tensor_mode, aten.div.Scalar, aten.div.Scalar_mode,
    aten.floor_divide.default, aten.sqrt.default, aten.rsqrt.default, aten.reciprocal.default,
    aten.mul.Tensor, aten.mul.Scalar, aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar,
    aten.remainder.Tensor, aten.remainder.Scalar, aten.true_divide.Tensor,
}
_FOLD_LIMIT = 64  # elements: shape math is tiny; anything bigger is real data


def _is_pure(target) -> bool:
    if isinstance(target, torch._ops.OpOverload):
        if torch.Tag.nondeterministic_seeded in target.tags or target._schema.is_mutable:
            return False
        return target not in (aten._assert_tensor_metadata.default,)
    return getattr(target, "__module__", None) in ("_operator", "operator", "math")


def _small(v) -> bool:
    if isinstance(v, torch.Tensor):
        return v.numel() <= _FOLD_LIMIT and not v.is_complex()
    if isinstance(v, (list, tuple)):
        return all(_small(x) for x in v)
    return isinstance(v, (int, float, bool)) or v is None


def _substitute(node: fx.Node, value: int | float | bool) -> Callable[[fx.Node], fx.node.Argument]:
    """For map_arg: `node` becomes the literal `value`, every other argument stays."""
    return lambda a: value if a is node else a


def fold_constants(gm: fx.GraphModule) -> int:
    """Evaluate pure ops of constants; returns how many nodes were replaced."""
    graph = gm.graph
    known: dict[fx.Node, object] = {}
    replaced = 0

    def value_of(a):
        return known[a] if isinstance(a, fx.Node) else a

    def all_known(args) -> bool:
        ok = True

        def visit(a):
            nonlocal ok
            if isinstance(a, fx.Node) and a not in known:
                ok = False
            return a

        fx.node.map_arg(args, visit)
        return ok

    for node in list(graph.nodes):
        if node.op != "call_function" or not _is_pure(node.target):
            if node.op == "call_function" and node.target is aten._assert_scalar.default and all_known(node.args[:1]):
                if bool(value_of(node.args[0])):
                    graph.erase_node(node)  # a check on static sizes that holds
            continue
        if not all_known((node.args, node.kwargs)):
            continue
        try:
            args = fx.node.map_arg(node.args, value_of)
            kwargs = fx.node.map_arg(node.kwargs, value_of)
            with torch.no_grad():
                value = node.target(*args, **kwargs)
        except Exception:
            continue
        if not _small(value):
            continue
        known[node] = value

    # Replace known values used by nodes that were not folded.
    for node, value in known.items():
        users = [u for u in node.users if u not in known]
        if not users:
            continue
        if isinstance(value, (int, float, bool)):
            substitute = _substitute(node, value)
            for u in users:
                u.args = fx.node.map_arg(u.args, substitute)
                u.kwargs = fx.node.map_arg(u.kwargs, substitute)
            replaced += 1
        elif isinstance(value, torch.Tensor) and value.dim() == 0:
            if node.target is aten.scalar_tensor.default:
                continue  # already a literal
            with graph.inserting_before(node):
                lit = graph.call_function(aten.scalar_tensor.default, (value.item(),), {"dtype": value.dtype})
            lit.meta["val"] = value
            node.replace_all_uses_with(lit, delete_user_cb=lambda u: u not in known)
            replaced += 1
    graph.eliminate_dead_code()
    return replaced


def _dtype(a):
    v = a.meta.get("val") if isinstance(a, fx.Node) else None
    return v.dtype if isinstance(v, torch.Tensor) else None


def promote(gm: fx.GraphModule) -> int:
    """Casts that torch's type promotion implies; Python numbers in integer ops become 0-d tensors."""
    graph = gm.graph
    changed = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in _PROMOTING:
            continue
        out = _dtype(node)
        if out is None:
            continue
        new_args = list(node.args)
        for i, a in enumerate(node.args):
            dt = _dtype(a)
            if dt is not None and dt != out and (out.is_floating_point or not dt.is_floating_point) and dt != torch.bool:
                if out.is_floating_point and dt.is_floating_point:
                    continue  # float mixing is TVM's own promotion
                with graph.inserting_before(node):
                    cast = graph.call_function(aten._to_copy.default, (a,), {"dtype": out})
                cast.meta["val"] = a.meta["val"].to(out)
                new_args[i] = cast
                changed += 1
            elif isinstance(a, (int, float)) and not isinstance(a, bool) and not out.is_floating_point:
                with graph.inserting_before(node):
                    lit = graph.call_function(aten.scalar_tensor.default, (a,), {"dtype": out})
                lit.meta["val"] = torch.scalar_tensor(a, dtype=out)
                new_args[i] = lit
                changed += 1
        node.args = tuple(new_args)
    return changed


def scalar_mode_to_tensor_mode(gm: fx.GraphModule) -> int:
    """`div.Scalar_mode(t, n, rounding_mode)` (a traced `size // heads`) has no TVM importer;
    `div.Tensor_mode` with n as a 0-d tensor of t's dtype means the same and has one."""
    changed = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not aten.div.Scalar_mode:
            continue
        t, n = node.args[:2]
        val = getattr(t, "meta", {}).get("val")
        dtype = getattr(val, "dtype", None) or torch.get_default_dtype()
        with gm.graph.inserting_before(node):
            other = gm.graph.call_function(aten.scalar_tensor.default, (n,), {"dtype": dtype})
            if isinstance(val, torch.Tensor):
                other.meta["val"] = torch.empty((), dtype=dtype, device=val.device) if not hasattr(val, "fake_mode") else val.fake_mode.from_tensor(torch.empty((), dtype=dtype))
            new = gm.graph.call_function(aten.div.Tensor_mode, (t, other), dict(node.kwargs))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        changed += 1
    return changed


def prepare(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    gm = ep.graph_module
    fold_constants(gm)
    scalar_mode_to_tensor_mode(gm)
    promote(gm)
    gm.graph.lint()
    gm.recompile()
    return ep


def scalar_tensor_converter(node: fx.Node, importer):
    """`scalar_tensor` whose value is a symbolic size (a TIR expression): a 0-d tensor holding it.
    TVM's own converter takes only Python numbers."""
    import tvm
    from tvm import relax

    value = importer.retrieve_args(node)[0]
    dtype = importer._convert_data_type(node.kwargs.get("dtype", torch.get_default_dtype()), importer.env)
    bb = importer.block_builder
    if isinstance(value, (int, float, bool)):
        return bb.emit(relax.const(value, dtype))
    if isinstance(value, relax.Expr) and isinstance(getattr(value, "ty", None), relax.TensorType):
        return bb.emit(relax.op.astype(value, dtype))
    expr = value  # a TIR expression of symbolic sizes (what TVM's sym_size.int gives)
    expr = tvm.tirx.Cast("int64", expr)
    # arange(v, v + 1) is a 1-element tensor holding v, computed at run time from the shape.
    one = bb.emit(relax.op.arange(expr, expr + 1, 1, "int64"))
    scalar = bb.emit(relax.op.reshape(one, ()))
    return bb.emit(relax.op.astype(scalar, dtype)) if str(dtype) != "int64" else scalar


CUSTOM_CONVERTERS = {"scalar_tensor.default": scalar_tensor_converter}
