"""PyTorch's NaN semantics for the ops whose TVM lowering drops NaN.

TVM lowers relu to max(x, 0), clamp to max(min(x, hi), lo), maximum/minimum to tir.Max/Min and
max-pooling and max/min reductions to a tir.Max/Min reducer. LLVM turns tir.Max into a compare and
select, so a NaN operand is replaced by the other one: relu(NaN) = 0, and a NaN in a pooling window
vanishes unless it comes last. PyTorch propagates NaN through all of them, and its relu and clamp keep -0.0. `install()` replaces
those ops' legalizations (FLegalize at a higher level than TVM's own) for floating-point tensors
with the same computation plus a NaN test: elementwise ops stay one select per element (vectorised
like the original); pooling and reductions add a second pass that marks windows holding a NaN.
Integer tensors keep TVM's legalization. Library kernels (oneDNN) never reach these legalizations.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_installed = False
_LEVEL = 11  # above TVM's registrations (level 10)


def _is_float(dtype) -> bool:
    return str(dtype).startswith(("float", "bfloat"))


def _arg_dtype(expr) -> str:
    info = getattr(expr, "ty", None) or getattr(expr, "struct_info", None)
    return str(getattr(info, "dtype", ""))


def install() -> None:
    """Register the NaN-propagating legalizations (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        _register()
        _installed = True


def _register() -> None:
    import tvm
    from tvm import te, topi
    from tvm import tirx as tir  # TVM 0.24 renamed tir to tirx
    from tvm.relax.transform.legalize_ops import common as legal_common

    def original(name):
        return tvm.ir.Op.get(name).get_attr("FLegalize")

    def override(name, make):
        orig = original(name)

        def legalize(bb, call):
            if not _is_float(_arg_dtype(call.args[0])):
                return orig(bb, call)
            return make(bb, call, orig)

        tvm.ir.register_op_attr(name, "FLegalize", legalize, level=_LEVEL)

    def _as(v, dtype):
        # Python numbers and FloatImm/IntImm become constants of dtype; expressions are cast.
        if isinstance(v, (int, float)):
            return tir.const(v, dtype)
        if isinstance(v, (tir.FloatImm, tir.IntImm)):
            return tir.const(v.value, dtype)
        return v if str(getattr(v, "dtype", dtype)) == str(dtype) else tir.Cast(dtype, v)

    def nan_or(v, other):
        # TIR has no isnan for bfloat16: test the value as float32 (a NaN stays a NaN in any cast).
        return tir.Select(tir.isnan(tir.Cast("float32", v)), v, other)

    # relu(x) = x < 0 ? 0 : x, as PyTorch computes it: NaN stays NaN (the test is false) and so
    # does -0.0 (1 / relu(-0.0) is -inf in PyTorch; max(-0.0, 0) may give +0.0).
    def relu(bb, call, orig):
        def f(x):
            zero = tir.const(0, x.dtype)
            return te.compute(x.shape, lambda *i: tir.Select(x(*i) < zero, zero, x(*i)), name="compute", tag="elemwise")

        return bb.call_te(f, call.args[0], primfunc_name_hint="relu")

    override("relax.nn.relu", relu)

    # clip(x, lo, hi) = min(max(x, lo), hi) with std::max / std::min as PyTorch's clamp: t = x < lo
    # ? lo : x, then hi < t ? hi : t. NaN and -0.0 pass through; lo > hi gives hi.
    def clip(bb, call, orig):
        def f(x, lo, hi):
            lo, hi = _as(lo, x.dtype), _as(hi, x.dtype)

            def body(*i):
                t = tir.Select(x(*i) < lo, lo, x(*i))
                return tir.Select(hi < t, hi, t)

            return te.compute(x.shape, body, name="compute", tag="elemwise")

        return bb.call_te(f, call.args[0], call.args[1], call.args[2], primfunc_name_hint="clip")

    override("relax.clip", clip)

    # maximum/minimum(a, b): NaN when either is NaN (torch.maximum/minimum), with broadcasting
    def binary(reduce_op, hint):
        def make(bb, call, orig):
            def f(a, b):
                def bshape(x):
                    return list(x.shape) if isinstance(x, te.Tensor) else []

                sa, sb = bshape(a), bshape(b)
                n = max(len(sa), len(sb))
                sa, sb = [1] * (n - len(sa)) + sa, [1] * (n - len(sb)) + sb

                def is_one(d):
                    return isinstance(d, (int, tir.IntImm)) and int(d) == 1

                out_shape = [db if is_one(da) else da for da, db in zip(sa, sb)]

                def load(x, shape, idx):
                    if not isinstance(x, te.Tensor):
                        return x
                    off = n - len(x.shape)
                    return x(*[0 if is_one(shape[off + k]) and not is_one(out_shape[off + k]) else idx[off + k] for k in range(len(x.shape))])

                dtype = a.dtype if isinstance(a, te.Tensor) else b.dtype

                def body(*idx):
                    va, vb = load(a, sa, idx), load(b, sb, idx)
                    va, vb = _as(va, dtype), _as(vb, dtype)
                    return nan_or(va, nan_or(vb, reduce_op(va, vb)))

                return te.compute(out_shape, body, name="compute", tag="broadcast")

            arg0, arg1 = call.args[0], legal_common._try_convert_to_scalar_const(call.args[1])
            if legal_common._is_relax_expr(arg1):
                arg0 = legal_common._try_convert_to_scalar_const(arg0)
            return bb.call_te(f, arg0, arg1, primfunc_name_hint=hint)

        return make

    override("relax.maximum", binary(tir.Max, "maximum"))
    override("relax.minimum", binary(tir.Min, "minimum"))

    # Pooling and reductions: the original result, then NaN wherever the window/axis held one.
    def with_nan_mark(compute, mark_compute=None):
        mark_compute = mark_compute or compute

        def f(x, *args):
            res = compute(x, *args)
            mark = mark_compute(topi.isnan(x).astype(x.dtype), *args)  # > 0 where a NaN was seen
            nan = tir.const(float("nan"), x.dtype)
            return te.compute(res.shape, lambda *i: tir.Select(mark(*i) > tir.const(0, x.dtype), nan, res(*i)), name="compute")

        return f

    def pool(ndim):
        topi_pool = {1: topi.nn.pool1d, 2: topi.nn.pool2d, 3: topi.nn.pool3d}[ndim]
        name = f"relax.nn.max_pool{ndim}d"
        orig_fn = original(name)

        def make(bb, call, orig):
            a = call.attrs
            if a.out_layout != a.layout:
                return orig_fn(bb, call)

            def compute(x):
                return topi_pool(x, kernel=a.pool_size, stride=a.strides, dilation=a.dilation, padding=a.padding, pool_type="max", ceil_mode=a.ceil_mode, layout=a.layout)

            return bb.call_te(with_nan_mark(compute), call.args[0], primfunc_name_hint=f"max_pool{ndim}d")

        return make

    for nd in (1, 2, 3):
        override(f"relax.nn.max_pool{nd}d", pool(nd))

    def reduction(topi_fn, hint):
        def make(bb, call, orig):
            axis = None if call.attrs.axis is None else [int(v) for v in call.attrs.axis]
            keepdims = bool(call.attrs.keepdims)

            def compute(x):
                return topi_fn(x, axis, keepdims)

            def mark(x):
                return topi.max(x, axis, keepdims)

            return bb.call_te(with_nan_mark(compute, mark), call.args[0], primfunc_name_hint=hint)

        return make

    override("relax.max", reduction(topi.max, "max"))
    override("relax.min", reduction(topi.min, "min"))
