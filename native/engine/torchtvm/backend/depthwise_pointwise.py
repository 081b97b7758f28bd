"""A depthwise convolution whose output only a 1x1 convolution reads (a MobileNet block's pair) as
one library call, `torchtvm.depthwise_pointwise` (library_depthwise.cc DepthwisePointwise): each
thread runs the depthwise loop on a few output rows into its own buffer and the pointwise GEMM from
there, so the pair costs one parallel region and its middle value never leaves the cache.

Offered for every such pair, whatever kernels placement chose for its halves, and taken only where
it times faster than the two calls as placed (placement.build_with_placement).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, replace
from typing import Any

from tvm import relax

from torchtvm.backend import library
from torchtvm.backend.relax_ir import dtype_of as _dtype
from torchtvm.backend.relax_ir import free_vars as _free_vars
from torchtvm.backend.relax_ir import var_name as _name

FUNC = "torchtvm.depthwise_pointwise"
_CONV = "torchtvm.conv2d"
# Epilogues both halves apply in registers (vector_math.h FusesUnary, SmallGemmFusesUnary).
_IN_REGISTERS = (0, 1, 2, 5, 9)


@dataclass
class Pair:
    depthwise: str  # the offload names of the two calls
    pointwise: str
    args: list  # the fused call's tensor arguments: x, w_dw, [b_dw], w_pw, [b_pw], [other]
    attrs: list  # its attributes (library_kernels.cc DepthwisePointwiseCall)
    mid_ty: object  # the depthwise output's type (the timing's two-call function computes it)
    dw_call: Any  # the two relax calls (with their types: the timing functions rebuild them)
    pw_call: Any


def pairs(placed) -> list[Pair]:
    """The depthwise -> 1x1 convolution pairs of `placed` (a module with its library calls'
    algorithms applied) that one call can take."""
    values: dict = {}
    uses: dict = {}
    func = placed["main"]
    for block in func.body.blocks:
        for b in block.bindings:
            values[b.var] = b.value
            for v in _free_vars(b.value):
                uses[v] = uses.get(v, 0) + 1
    for v in _free_vars(func.body.body):
        uses[v] = uses.get(v, 0) + 1
    # Calls are matched to offloads by their var's name: a pair whose names repeat is not offered.
    names = collections.Counter(_name(v) for v in values)
    out = []
    for var, value in values.items():
        if not library.calls_to(value, _CONV):
            continue
        pw_args, pw_attrs, _ = library.split_call_args(value)
        x = pw_args[0]
        if not isinstance(x, relax.Var) or uses.get(x, 0) != 1 or x not in values or not library.calls_to(values[x], _CONV):
            continue
        dw_args, dw_attrs, _ = library.split_call_args(values[x])
        pair = _pair(dw_args, [int(getattr(a, "value", -1)) for a in dw_attrs.values], pw_args, [int(getattr(a, "value", -1)) for a in pw_attrs.values])
        if pair is None or names[_name(x)] != 1 or names[_name(var)] != 1:
            continue
        out.append(Pair(_name(x), _name(var), pair[0], pair[1], x.ty, values[x], value))
    return out


def _pair(dw_args: list, d: list, pw_args: list, p: list):
    """(args, attrs) of the fused call, or None where it does not take the pair."""
    if len(d) < 10 or len(p) < 10 or any(v < 0 for v in d + p):
        return None
    x, wd = dw_args[0], dw_args[1]
    wshape, pshape, xshape = library.static_shape(wd), library.static_shape(pw_args[1]), library.static_shape(x)
    if wshape is None or pshape is None or xshape is None or len(xshape) != 4 or _dtype(x) != "float32":
        return None
    c = xshape[3]
    # Whatever each half was placed as (the runtime's loop or GEMM, oneDNN, MKL, ATen), the one call
    # is a candidate: it is timed against the two as placed. The depthwise half: NHWC input (not a
    # model input read as NCHW), no residual; the pointwise half: 1x1, stride 1, unpadded, one group.
    if not (d[6] == c and c >= 4 and wshape == [c, 1, wshape[2], wshape[3]] and d[9] == 0 and d[7] in _IN_REGISTERS):
        return None
    if len(d) > 11 and d[11] == 1:
        return None
    if not (pshape[1:] == [c, 1, 1] and p[:4] == [1, 1, 0, 0] and p[6] == 1 and p[7] in _IN_REGISTERS):
        return None
    if any(library.constant_value(w) is None for w in (wd, pw_args[1])):
        return None
    has_bd, has_bp, has_other = d[8], p[8], p[9]
    args = [x, wd] + ([dw_args[2]] if has_bd else []) + [pw_args[1]] + ([pw_args[2]] if has_bp else []) + ([pw_args[2 + has_bp]] if has_other else [])
    return args, d[:8] + [has_bd, p[7], has_bp, has_other]


def faster(pairs: list[Pair], timed: dict, margin: float) -> list[Pair]:
    """The pairs whose one call timed faster than their two by more than `margin` (timed:
    measure.time_depthwise_pointwise's {pointwise op name: {"two": ms, "fused": ms}})."""
    return [p for p in pairs if p.pointwise in timed and timed[p.pointwise]["fused"] < timed[p.pointwise]["two"] * margin]


def fuse(placed, offloads: list, chosen: list[Pair]):
    """`placed` with each pair of `chosen` as one call (the pointwise op's binding; the depthwise
    one goes), and the offloads with each pair's two as one: (module, offloads)."""
    if not chosen:
        return placed, offloads
    from tvm.relax.expr_functor import PyExprMutator, mutator

    by_pw = {p.pointwise: p for p in chosen}

    @mutator
    class Fuse(PyExprMutator):
        def visit_var_binding_(self, binding):
            pair = by_pw.get(_name(binding.var))
            if pair is None:
                return super().visit_var_binding_(binding)
            args = [a if library.constant_value(a) is not None else self.visit_expr(a) for a in pair.args]
            call = relax.op.call_dps_packed(FUNC, relax.Tuple(args + [relax.ShapeExpr(pair.attrs)]), out_ty=binding.var.ty)
            self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(call)))

    mod = placed.clone()
    mod["main"] = Fuse(placed).visit_expr(placed["main"])
    mod = relax.transform.DeadCodeElimination()(mod)
    by_name = {o.name: o for o in offloads}
    gone = {p.depthwise for p in chosen}
    out = []
    for o in offloads:
        if o.name in gone:
            continue
        p = by_pw.get(o.name)
        if p is not None:
            dw = by_name[p.depthwise]
            o = replace(o, kind="depthwise_pointwise", func=FUNC, epilogue=dw.epilogue + ["1x1 conv"] + o.epilogue, vars=dw.vars + o.vars, algorithm="", winograd_ok=False)
        out.append(o)
    return mod, out


def timing_functions(pair: Pair) -> dict:
    """The pair as two relax functions to time (measure.time_functions): "two" (the two calls as
    placed) and "fused" (the one call), each from the depthwise input (and the residual)."""
    x = pair.args[0]
    other = pair.args[-1] if pair.attrs[11] else None

    out = {}
    for kind in ("two", "fused"):
        params = [relax.Var("x", x.ty)] + ([relax.Var("other", other.ty)] if other is not None else [])
        remap = {x: params[0]} | ({other: params[1]} if other is not None else {})
        sub = _substitute(remap)
        bb = relax.BlockBuilder()
        with bb.function("main", params):
            with bb.dataflow():
                if kind == "two":
                    d_args, d_attrs, _ = library.split_call_args(pair.dw_call)
                    mid = bb.emit(relax.op.call_dps_packed(_CONV, relax.Tuple(sub(d_args) + [d_attrs]), out_ty=pair.mid_ty))
                    p_args, p_attrs, _ = library.split_call_args(pair.pw_call)
                    y = bb.emit(relax.op.call_dps_packed(_CONV, relax.Tuple([mid] + sub(p_args[1:]) + [p_attrs]), out_ty=pair.pw_call.ty))
                else:
                    y = bb.emit(relax.op.call_dps_packed(FUNC, relax.Tuple(sub(pair.args) + [relax.ShapeExpr(pair.attrs)]), out_ty=pair.pw_call.ty))
                y = bb.emit_output(y)
            bb.emit_func_output(y)
        out[kind] = bb.get()["main"]
    return out


def _substitute(remap: dict):
    """Call arguments with the vars of `remap` replaced (a timing function's own params)."""
    return lambda args: [remap.get(a, a) if isinstance(a, relax.Var) else a for a in args]


def signature(pair: Pair) -> dict:
    """What a timing of the pair depends on (with the machine: kernel_choices.key)."""
    return {"func": FUNC, "inputs": [[library.static_shape(a), str(_dtype(a))] for a in pair.args], "attrs": pair.attrs}

