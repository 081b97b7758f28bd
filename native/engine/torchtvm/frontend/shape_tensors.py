"""Sizes that a traced model computes as tensors, written back as the expressions of the input's
symbols that they equal.

A traced model's `x.view(x.size(0) * 128, -1)` computes the size on 0-d int64 tensors
(NumToTensor, mul, int()); torch.export makes the int() an unbacked symbol, and TVM's importer a
fresh symbolic dim (`vm.builtin.tensor_to_shape` then `match_cast(..., R.Shape([x]))`) that nothing
relates to the input's batch. Every shape after it is then opaque: the kernels' placement has no
size to time them at, and memory planning no bound to plan them with. This pass follows those
tensors from the input's symbols (arange(s, s + 1), reshape, astype, +, -, *, //) and binds each
fresh dim to its expression (x = s22 * 128); the match_cast stays, as the run-time check it was.
"""

from __future__ import annotations

from tvm import relax, tirx
from tvm.ir.expr import Constant
from tvm.ir.prim.expr import Expr as PrimExpr
from tvm.sym.analyzer import Analyzer

_ARITH = {
    "relax.add": lambda a, b: a + b,
    "relax.subtract": lambda a, b: a - b,
    "relax.multiply": lambda a, b: a * b,
    "relax.floor_divide": tirx.floordiv,
    "relax.divide": tirx.truncdiv,  # on integer tensors (the only ones followed here): C's division
}
# Identities on integer tensors: shapes, casts between integer types, rounding.
_SAME = ("relax.reshape", "relax.astype", "relax.trunc", "relax.floor", "relax.ceil", "relax.round")


def _value(expr, values: dict):
    """The integer a one-element integer tensor holds, as a PrimExpr of the symbols, or None."""
    if isinstance(expr, relax.Var):
        return values.get(expr)
    if isinstance(expr, Constant):
        a = expr.value.numpy()
        if a.size == 1 and a.dtype.kind in "iu":
            return tirx.IntImm("int64", int(a.reshape(())))
    return None


def _prim(expr):
    """An integer PrimExpr argument, as int64, or None."""
    if not isinstance(expr, PrimExpr) or not str(expr.ty).startswith("int"):
        return None
    return expr if str(expr.ty) == "int64" else tirx.Cast("int64", expr)


def _one_element(ty) -> bool:
    shape = getattr(ty, "shape", None)
    values = getattr(shape, "values", None)
    return values is not None and all(hasattr(d, "value") and int(d.value) == 1 for d in values)


def _is_int(ty) -> bool:
    return str(getattr(ty, "dtype", "")).startswith(("int", "uint"))


def resolve(mod):
    """`mod` with each symbolic dim that a size tensor defines bound to the symbols' expression."""
    analyzer = Analyzer()
    simplify = analyzer.simplify
    binding: dict = {}
    for fn in mod.functions.values():
        if not isinstance(fn, relax.Function):
            continue
        values: dict = {}  # var -> PrimExpr, for one-element integer tensors
        shapes: dict = {}  # var -> [PrimExpr], for shapes made from them
        for block in getattr(fn.body, "blocks", []):
            for b in block.bindings:
                v = b.value
                if isinstance(b, relax.MatchCast):
                    src = shapes.get(v) if isinstance(v, relax.Var) else None
                    pattern = getattr(getattr(b, "ty", None), "values", None)
                    if src is not None and pattern is not None and len(pattern) == len(src):
                        for p, s in zip(pattern, src):
                            if isinstance(p, tirx.Var) and p not in binding:
                                binding[p] = simplify(s)
                    continue
                if isinstance(v, (Constant, relax.Var)):
                    x = _value(v, values)
                    if x is not None:
                        values[b.var] = x
                    continue
                name = getattr(v.op, "name", None) if isinstance(v, relax.Call) else None
                if name == "relax.tensor_to_shape" and v.args:
                    x = _value(v.args[0], values)
                    if x is not None:
                        shapes[b.var] = [x]
                    continue
                if name is None or not _is_int(getattr(b.var, "ty", None)) or not _one_element(b.var.ty):
                    continue
                if name == "relax.arange" and len(v.args) == 3:
                    start, end, step = (_prim(a) for a in v.args)
                    if start is not None and end is not None and step is not None and analyzer.can_prove_equal(end - start, step):
                        values[b.var] = start
                elif name in _SAME and v.args:
                    x = _value(v.args[0], values)
                    if x is not None:
                        values[b.var] = x
                elif name in _ARITH and len(v.args) == 2:
                    a, c = _value(v.args[0], values), _value(v.args[1], values)
                    if a is not None and c is not None:
                        values[b.var] = simplify(_ARITH[name](a, c))
    if not binding:
        return mod
    try:
        return relax.transform.BindSymbolicVars(binding)(mod)
    except Exception:  # noqa: BLE001 - a refinement: the module as imported still runs every size
        return mod
