"""The graph every placement builds from: BatchNorm folded into convolutions, inference ops
decomposed and, where library convolutions will run, the whole graph moved to channels-last (NHWC)
with the weight and bias transforms folded into constants."""

from __future__ import annotations

import tvm
from tvm import relax

from torchtvm.backend.relax_ir import dtype_of, op_name, prim_value, shape_json, var_name


def prepare(mod, convert_layout: bool):
    """Fold BatchNorm into convolutions, decompose inference ops and (for library convolutions)
    move the graph to NHWC, folding the weight and bias transforms into constants."""
    seq = [
        relax.transform.FoldBatchnormToConv2D(),
        relax.transform.DecomposeOpsForInference(),
        relax.transform.CanonicalizeBindings(),
        _FoldWithNumpy(),
        relax.transform.FoldConstant(),
    ]
    mod = tvm.transform.Sequential(seq)(mod)
    if convert_layout and _has_op(mod, "relax.nn.conv1d"):
        # A 1-D convolution is a 2-D one over a height of 1: so it gets the library's kernels
        # (oneDNN, fused epilogues, NHWC) instead of TVM's default schedule.
        mod = tvm.transform.Sequential([_Conv1dAsConv2d(), relax.transform.FoldConstant(), relax.transform.CanonicalizeBindings(), relax.transform.DeadCodeElimination()])(mod)
    if not convert_layout or not _has_op(mod, "relax.nn.conv2d"):
        return mod
    # ConvertLayout has no layout rule for clip (it would transpose back to NCHW around every
    # relu6): express clip as maximum/minimum, which it does move to NHWC.
    nhwc = [_ClipToMinMax(), _PositiveAxes(), relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "OHWI"]}), _FoldWithNumpy(), relax.transform.FoldConstant(), _UnitPermutesAsReshapes(), relax.transform.CanonicalizeBindings(), relax.transform.DeadCodeElimination()]
    try:
        return tvm.transform.Sequential(nhwc)(mod)
    except Exception:  # TVM's layout pass fails on some graphs: keep NCHW (convolutions stay in TVM)
        return mod


# Ops on constants (BatchNorm folded into weights, weights moved to OHWI) that numpy computes
# exactly as TVM would: FoldConstant builds and runs one TVM kernel per op (about 17 ms each, 5 s
# of a UNet's build); what is left (other dtypes, other ops) it still folds.
_NUMPY_BINARY = {"relax.add": "add", "relax.subtract": "subtract", "relax.multiply": "multiply", "relax.divide": "divide"}
_NUMPY_DTYPES = ("float32", "float64", "int32", "int64")


def _FoldWithNumpy():
    import numpy as np
    from tvm.ir.expr import Constant
    from tvm.relax.expr_functor import PyExprMutator, mutator

    def value(e, mutator=None):
        if isinstance(e, relax.Var) and mutator is not None:
            e = mutator.lookup_binding(e)  # a var bound to a constant folded earlier in this pass
        if not isinstance(e, Constant) or dtype_of(e) not in _NUMPY_DTYPES:
            return None
        v = e.value
        # a tensor constant, or a scalar one (its value a Python number or an IntImm/FloatImm)
        return v.numpy() if hasattr(v, "numpy") else np.array(getattr(v, "value", v), dtype=dtype_of(e))

    def ints(v) -> list[int]:
        return [int(x) for x in v]

    @mutator
    class Mutator(PyExprMutator):
        def visit_call_(self, op):
            call = self.visit_expr_post_order(op)
            name = op_name(call)
            if name is None or dtype_of(call) not in _NUMPY_DTYPES:
                return call
            try:
                out = _fold(name, call, lambda e: value(e, self))
            except Exception:  # anything unexpected: leave it to FoldConstant
                return call
            if out is None:
                return call
            return relax.const(np.ascontiguousarray(out).astype(dtype_of(call)), dtype_of(call))

    def _fold(name, call, value):
        a = call.args
        if name in _NUMPY_BINARY:
            x, y = value(a[0]), value(a[1])
            if x is None or y is None:
                return None
            if name == "relax.divide" and not np.issubdtype(x.dtype, np.floating):
                return None  # TVM's integer division floors differently from numpy's true division
            return getattr(np, _NUMPY_BINARY[name])(x, y)
        x = value(a[0])
        if x is None:
            return None
        attrs = call.attrs
        if name == "relax.sqrt" and np.issubdtype(x.dtype, np.floating):
            return np.sqrt(x)
        if name == "relax.permute_dims":
            return np.transpose(x, ints(attrs.axes) if attrs.axes is not None else None)
        if name in ("relax.reshape", "relax.broadcast_to"):
            shape = [int(d) for d in a[1].values] if isinstance(a[1], relax.ShapeExpr) else None
            if shape is None:
                return None
            return np.reshape(x, shape) if name == "relax.reshape" else np.broadcast_to(x, shape)
        if name == "relax.expand_dims":
            return np.expand_dims(x, tuple(ints(attrs.axis)))
        if name == "relax.squeeze":
            return np.squeeze(x, tuple(ints(attrs.axis)) if attrs.axis is not None else None)
        return None

    return _function_pass(Mutator, "FoldWithNumpy")


def _function_pass(mutator_cls, name: str):
    """A module pass that runs `mutator_cls` (a PyExprMutator) over every Relax function."""

    @tvm.transform.module_pass(opt_level=0, name=name)
    def transform(mod, ctx):
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                mod[gv] = mutator_cls(mod).visit_expr(func)
        return mod

    return transform


def _has_op(mod, name: str) -> bool:
    found = []
    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, lambda e: found.append(1) if op_name(e) == name else None)
    return bool(found)


# Reductions and squeeze whose axes ConvertLayout remaps: it fails (std::bad_alloc) on negative
# axes, as an adaptive 1-D pool decomposes to (mean over [-1, -2], squeeze [-2]).
_AXIS_OPS = {"relax.mean": relax.op.mean, "relax.sum": relax.op.sum, "relax.max": relax.op.max, "relax.min": relax.op.min, "relax.prod": relax.op.prod}


def _UnitPermutesAsReshapes():
    """expand_dims, squeeze and a permute_dims that moves only dims of size 1 (a Conv1d's
    activation between its [N, L, C] and [N, 1, L, C] forms, after the layout pass) keep every
    element where it is: each becomes a reshape, and a reshape of a reshape one reshape, which the
    VM runs as a view of the same buffer (two such ops in a row were fused into a copy kernel)."""
    from tvm.relax.expr_functor import PyExprMutator, mutator

    def is_view(call) -> bool:
        name = op_name(call)
        if name in ("relax.expand_dims", "relax.squeeze", "relax.reshape"):
            return True
        if name != "relax.permute_dims" or call.attrs.axes is None:
            return False
        dims = shape_json(call.args[0])
        kept = [int(a) for a in call.attrs.axes if dims[int(a)] != 1]  # a symbolic dim counts as not 1
        return bool(dims) and kept == sorted(kept)

    @mutator
    class Mutator(PyExprMutator):
        def visit_call_(self, op):
            call = self.visit_expr_post_order(op)
            out = getattr(call.ty, "shape", None)
            if out is None or not is_view(call):
                return call
            src = call.args[0]
            bound = self.lookup_binding(src) if isinstance(src, relax.Var) else None
            if bound is not None and op_name(bound) == "relax.reshape":
                src = bound.args[0]
            return relax.op.reshape(src, out)

    return _function_pass(Mutator, "UnitPermutesAsReshapes")


def _PositiveAxes():
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Mutator(PyExprMutator):
        def visit_call_(self, op):
            call = self.visit_expr_post_order(op)
            name = op_name(call)
            if name not in _AXIS_OPS and name != "relax.squeeze":
                return call
            axes = call.attrs.axis
            ndim = getattr(call.args[0].ty, "ndim", -1)
            if axes is None or ndim < 0 or all(int(a) >= 0 for a in axes):
                return call
            fixed = [int(a) % ndim for a in axes]
            if name == "relax.squeeze":
                return relax.op.squeeze(call.args[0], fixed)
            return _AXIS_OPS[name](call.args[0], fixed, bool(call.attrs.keepdims))

    return _function_pass(Mutator, "PositiveAxes")


def _Conv1dAsConv2d():
    from tvm.ir.expr import Constant
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Mutator(PyExprMutator):
        def __init__(self, mod):
            super().__init__(mod)
            self.as_2d: dict = {}  # each conv1d's var (now a squeeze) -> the conv2d's 4-D result

        def visit_var_binding_(self, binding):
            call = self.visit_expr(binding.value)
            a = getattr(call, "attrs", None)
            if op_name(call) == "relax.add" and call.args[0] in self.as_2d and isinstance(call.args[1], Constant) and len(shape_json(call.args[1])) in (2, 3):
                # The conv1d's bias (a [C, 1] or [1, C, 1] constant), added before the squeeze: in
                # the 2-D domain the library convolution takes it as its own bias.
                y = self.builder_.emit(relax.op.add(self.as_2d[call.args[0]], relax.op.expand_dims(call.args[1], [-1])))
                self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(relax.op.squeeze(y, [2]))))
                return
            if op_name(call) != "relax.nn.conv1d" or str(a.data_layout) != "NCW" or str(a.kernel_layout) != "OIW" or str(a.out_layout) != "NCW":
                return super().visit_var_binding_(binding)
            x, w = call.args
            pad = [int(p) for p in a.padding]
            bb = self.builder_
            # The conv2d takes the conv1d's name: the placement report and the graph view find an
            # op's node by the name of its root var.
            y = bb.emit(
                relax.op.nn.conv2d(
                    bb.emit(relax.op.expand_dims(x, [2])),
                    bb.emit(relax.op.expand_dims(w, [2])),
                    strides=[1, int(a.strides[0])],
                    padding=[0, pad[0], 0, pad[-1]],
                    dilation=[1, int(a.dilation[0])],
                    groups=int(a.groups),
                    out_dtype=str(a.out_dtype) or "",
                ),
                name_hint=var_name(binding.var),
            )
            bb.emit_normalized(relax.VarBinding(binding.var, bb.normalize(relax.op.squeeze(y, [2]))))
            self.as_2d[binding.var] = y

    return _function_pass(Mutator, "Conv1dAsConv2d")


def _ClipToMinMax():
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Mutator(PyExprMutator):
        def visit_call_(self, op):
            call = self.visit_expr_post_order(op)
            if op_name(call) != "relax.clip" or dtype_of(call) not in ("float32", "float16", "bfloat16"):
                return call
            out, dt = call.args[0], dtype_of(call)
            lo, hi = prim_value(call.args[1]), prim_value(call.args[2])
            if lo is None or hi is None:
                return call
            if lo != float("-inf"):
                out = relax.op.maximum(out, relax.const(lo, dt))
            if hi != float("inf"):
                out = relax.op.minimum(out, relax.const(hi, dt))
            return out

    return _function_pass(Mutator, "ClipToMinMax")
