"""Small readers of Relax expressions shared by the backend's planners and passes (library, library_attention,
recurrent, layout)."""

from __future__ import annotations

import tvm
from tvm import relax


def op_name(expr) -> str | None:
    """The op a call calls ("relax.nn.conv2d"), or None for anything else."""
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def var_name(var) -> str:
    return str(getattr(var, "name", None) or getattr(var, "name_hint", ""))


def dtype_of(expr) -> str:
    return str(getattr(expr.ty, "dtype", ""))


def shape_of(expr):
    """An expression's shape as a list of PrimExprs, or None where it has none (a tuple, an object)."""
    shp = getattr(expr.ty, "shape", None)
    return None if shp is None or not hasattr(shp, "values") else list(shp.values)


def shape_json(expr) -> list:
    """The shape as JSON: ints, and symbolic dims as their text."""
    return [int(v) if hasattr(v, "value") else str(v) for v in (shape_of(expr) or [])]


def prim_value(v):
    """The Python number of a relax.PrimValue (or an IntImm/FloatImm), or None."""
    val = getattr(v, "value", None)
    if val is None:
        return None
    return getattr(val, "value", val)


def free_vars(expr) -> list:
    """Every relax.Var an expression reads, in visiting order (with repeats)."""
    out = []
    relax.analysis.post_order_visit(expr, lambda e: out.append(e) if isinstance(e, relax.Var) else None)
    return out
