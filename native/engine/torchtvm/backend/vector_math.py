"""Legalizations that keep transcendental elementwise ops vectorizable.

TVM legalizes GELU to `0.5 * x * (1 + erf(x / sqrt 2))`, and `erf` lowers to one call of libm's
scalar erff per element: no loop containing it vectorizes (an audio net's GroupNorm + GELU kernels
took 4x PyTorch's time, nearly all in erff). Here GELU uses TOPI's fast_erf instead, a rational
approximation in plain arithmetic (float32 error within 1e-6 of erf, NaN and +-inf kept) that
vectorizes and fuses with the ops around it. Registered above TVM's own legalization, as
nan_semantics does, once per process.
"""

from __future__ import annotations

import threading

_LEVEL = 12  # above TVM's (10) and nan_semantics' (11) FLegalize registrations
_lock = threading.Lock()
_installed = False


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _register()
        _installed = True


def _register() -> None:
    import tvm
    from tvm import te, topi
    from tvm import tirx as tir

    orig = tvm.ir.Op.get("relax.nn.gelu").get_attr("FLegalize")

    def gelu(bb, call):
        dtype = str(call.args[0].ty.dtype)
        if dtype not in ("float32", "float16", "bfloat16"):
            return orig(bb, call)

        def f(x):
            xf = x if dtype == "float32" else topi.cast(x, "float32")
            erf = topi.fast_erf(te.compute(xf.shape, lambda *i: xf(*i) * tir.const(0.7071067811865476, "float32"), name="scaled"))
            y = te.compute(xf.shape, lambda *i: xf(*i) * (tir.const(0.5, "float32") + tir.const(0.5, "float32") * erf(*i)), name="gelu", tag="elemwise")
            return y if dtype == "float32" else topi.cast(y, dtype)

        return bb.call_te(f, call.args[0], primfunc_name_hint="gelu")

    tvm.ir.register_op_attr("relax.nn.gelu", "FLegalize", gelu, level=_LEVEL)
