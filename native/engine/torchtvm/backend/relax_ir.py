"""Small readers of Relax expressions shared by the library planners (library.py, library_attention.py)."""

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
