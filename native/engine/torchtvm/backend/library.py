"""Library kernels as graph nodes: conv2d, linear and matmul chains become `R.call_dps_packed` calls
to the functions that libtorchtvm_runtime.so registers (native/runtime/src/library_kernels.cc),
which run PyTorch's oneDNN / MKL kernels on TVM's buffers without copying.

A chain is the op plus the epilogue the library fuses: a bias (BatchNorm is folded into the conv
first), a residual add, and one activation. Convolutions go to channels-last (NHWC) for the whole
graph, so consecutive library convolutions hand NHWC buffers to each other and TVM's own kernels
(pooling, elementwise, reductions) run in NHWC too; layout transforms remain only at the model's
edges. Everything that is not offloaded is left to TVM, which fuses and generates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import relax
from tvm.ir.expr import (
    Constant as _Constant,  # relax constants live in tvm.ir since 0.27
)

from torchtvm.backend.layout import prepare
from torchtvm.backend.library_attention import (  # attention, softmax: torch's fused kernels
    whole_ops as _whole_ops,
)
from torchtvm.backend.library_attention import with_attention as _with_attention
from torchtvm.backend.offload import Offload
from torchtvm.backend.relax_ir import dtype_of as _dtype
from torchtvm.backend.relax_ir import free_vars as _free_vars
from torchtvm.backend.relax_ir import op_name as _op_name
from torchtvm.backend.relax_ir import shape_json as _shape_json
from torchtvm.backend.relax_ir import shape_of as _shape
from torchtvm.backend.relax_ir import var_name as _name
from torchtvm.common.runtime_library import load_library

# Activation epilogues, numbered as library_kernels.cc's UnaryOf / ApplyUnary read them.
UNARY_CODES = {"relax.nn.relu": 1, "clip06": 2, "relax.sigmoid": 3, "relax.tanh": 4, "hardswish": 5, "relax.nn.gelu": 6, "relax.nn.gelu_tanh": 7, "silu": 8, "hardsigmoid": 9}

PLACEMENTS = ("auto", "library", "tvm")
# The op kinds the planner gives to the library (chains rooted at these ops).
KINDS = ("squeeze_excite", "conv2d", "linear", "matmul", "max_pool2d")

# dtypes the library kernels take; bfloat16 / float16 only where oneDNN has native support.
_HALF_FEATURES = {"bfloat16": ("avx512bf16", "amx-bf16"), "float16": ("avx512fp16", "amx-fp16")}


def library_available() -> bool:
    """True when the runtime library (which registers the kernels) is loaded in this process."""
    import tvm_ffi

    load_library()
    return tvm_ffi.get_global_func("torchtvm.conv2d", allow_missing=True) is not None


def library_dtypes(features) -> set[str]:
    dtypes = {"float32"}
    for dt, needs in _HALF_FEATURES.items():
        if any(f in features for f in needs):
            dtypes.add(dt)
    return dtypes


@_whole_ops
def offload(mod, dtypes: set[str], kinds=KINDS, keep_in_tvm=frozenset()):
    """Rewrite every offloadable chain in `main` to a library call, except the ops named in
    `keep_in_tvm` (placement measured them faster as TVM's kernels). Each call gets its default
    algorithm (use_algorithms switches them). Returns (module, offloads)."""
    func = mod["main"]
    plan = _Planner(dtypes, kinds)
    plan.visit_expr(func)
    if keep_in_tvm:
        plan.ordered = [c for c in plan.ordered if c.report.name not in keep_in_tvm]
        plan.chains = {c.head: c for c in plan.ordered}
    if not plan.chains:
        return mod, []
    new_func = _rewriter()(mod, plan.chains).visit_expr(func)
    mod = mod.clone()
    mod["main"] = new_func
    mod = relax.transform.DeadCodeElimination()(mod)
    mod = relax.transform.CanonicalizeBindings()(mod)
    return mod, _in_call_order(func, plan.ordered)


def library_calls(mod, func: str) -> dict:
    """The calls of `main` to the runtime function `func`, by the name of the var each binds (the
    op's name in the placement report)."""
    return {_name(b.var): b.value for block in mod["main"].body.blocks for b in block.bindings if calls_to(b.value, func)}


def calls_to(value, func: str) -> bool:
    """Whether a binding's value is a call_dps_packed to the runtime function `func`."""
    return _op_name(value) == "relax.call_dps_packed" and str(getattr(value.args[0], "global_symbol", "")) == func


# The code of each library algorithm, by runtime function: the extra last attribute of its call
# (native/runtime/src/library_kernels.cc Conv2d, library_recurrent.cc).
ALGORITHM_CODES = {
    "torchtvm.conv2d": {"winograd": 1, "onednn": 2, "packed": 3, "torch": 4, "small_gemm": 5, "direct": 6},
    "torchtvm.lstm": {"torch": 1},
    "torchtvm.gru": {"torch": 1},
    "torchtvm.linear": {"packed": 1, "small_gemm": 2},
    "torchtvm.squeeze_excite": {"torch": 1},
    "torchtvm.attention": {"own": 1},
}


def split_call_args(call) -> tuple[list, relax.ShapeExpr, list]:
    """A library call's arguments as (inputs, its attribute shape, the scalars after it): most
    calls end with the attributes; torchtvm.attention and layer_norm pass a float after them."""
    fields = list(call.args[1].fields)
    at = max(i for i, f in enumerate(fields) if isinstance(f, relax.ShapeExpr))
    return fields[:at], fields[at], fields[at + 1 :]


def use_algorithms(mod, offloads: list, choices: dict):
    """`mod` (as offload placed it) with the calls named in `choices` ({op name: algorithm, one of
    ALGORITHM_CODES}) given that algorithm, without planning the graph again. A direct convolution
    of an NCHW tensor moved to NHWC (the model's input, before a stem) reads it where it lies: the
    transpose goes. Marks their offloads; returns the module."""
    from tvm.relax.expr_functor import PyExprMutator, mutator

    func_of = {o.name: o.func for o in offloads}
    chosen = {n: ALGORITHM_CODES[func_of[n]][a] for n, a in choices.items() if a and a in ALGORITHM_CODES.get(func_of.get(n, ""), {})}
    direct = ALGORITHM_CODES["torchtvm.conv2d"]["direct"]

    @mutator
    class Switch(PyExprMutator):
        def visit_var_binding_(self, binding):
            v = binding.value
            name = _name(binding.var)
            if name not in chosen or not calls_to(v, func_of[name]):
                return super().visit_var_binding_(binding)
            args, attrs, scalars = split_call_args(v)
            args = [a if isinstance(a, _Constant) else self.visit_expr(a) for a in args]
            extra = [chosen[name]]
            if func_of[name] == "torchtvm.conv2d" and chosen[name] == direct and direct_takes(static_shape(args[1]), int(attrs.values[6])):
                source = _nchw_source(self.lookup_binding(args[0]) if isinstance(args[0], relax.Var) else None)
                if source is not None:
                    args[0], extra = source, extra + [1]
            ty = binding.var.ty
            out_ty = list(ty.fields) if hasattr(ty, "fields") else ty  # LSTM / GRU: several outputs
            call = relax.op.call_dps_packed(func_of[name], relax.Tuple(args + [relax.ShapeExpr(list(attrs.values) + extra)] + scalars), out_ty=out_ty)
            self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(call)))

    if not chosen:
        return mod
    mod = mod.clone()
    mod["main"] = Switch(mod).visit_expr(mod["main"])
    mod = relax.transform.DeadCodeElimination()(mod)  # a transpose no call reads any more
    for o in offloads:
        if o.name in chosen:
            o.algorithm = choices[o.name]
    return mod


def direct_takes(weight_shape, groups: int) -> bool:
    """Whether library_direct_conv.cc takes a convolution (OIHW weight shape): one group, at most
    512 values per output pixel."""
    return weight_shape is not None and groups == 1 and weight_shape[1] * weight_shape[2] * weight_shape[3] <= 512


def _nchw_source(value):
    """The 4-D float32 tensor that `value` moves from NCHW to NHWC (permute_dims [0, 2, 3, 1]), else None."""
    if _op_name(value) != "relax.permute_dims" or value.attrs.axes is None or [int(a) for a in value.attrs.axes] != [0, 2, 3, 1]:
        return None
    x = value.args[0]
    shape = static_shape(x)
    return x if _dtype(x) == "float32" and shape is not None and len(shape) == 4 else None


@_with_attention
def candidates(mod, kinds=KINDS) -> list[Offload]:
    """The ops the library could take, without taking them (for the report of a TVM-only build)."""
    plan = _Planner({"float32", "float16", "bfloat16"}, kinds)
    func = prepare(mod, convert_layout=True)["main"]
    plan.visit_expr(func)
    return _in_call_order(func, plan.ordered)


def isolate(mod, dtypes: set[str], kinds=KINDS) -> list[tuple[Offload, object]]:
    """Each offloadable chain of `main` as a function of its own (its inputs as parameters, its
    weights as constants, the same layout), for timing it in the library against TVM's kernels.
    Returns (op, relax.Function) pairs; chains over symbolic shapes are left out."""
    func = mod["main"]
    plan = _Planner(dtypes, kinds)
    plan.visit_expr(func)
    out = []
    for chain in plan.ordered:
        defined = set(chain.bindings)
        free: list[relax.Var] = []
        for v in chain.bindings:
            for a in _free_vars(plan.values[v]):
                if a not in defined and not any(a.same_as(f) for f in free):
                    free.append(a)
        if any(not all(isinstance(d, int) for d in _shape_json(v)) for v in free + [chain.head]):
            continue
        out.append((chain.report, _standalone(free, chain.bindings, plan.values, chain.head)))
    return out


def _standalone(free: list, bindings: list, values: dict, head):
    """A relax.Function computing `head` from `free` by the same bindings (fresh vars)."""
    from tvm.relax.expr_functor import PyExprMutator, mutator

    params = [relax.Var(_name(v), v.ty) for v in free]
    remap = dict(zip(free, params))

    @mutator
    class Substitute(PyExprMutator):
        def visit_var_(self, op):
            return remap.get(op, op)

        def visit_dataflow_var_(self, op):
            return remap.get(op, op)

    bb = relax.BlockBuilder()
    with bb.function("main", params):
        sub = Substitute()
        with bb.dataflow():  # TVM fuses only inside dataflow blocks, as in the model
            for v in bindings:
                remap[v] = bb.emit(sub.visit_expr(values[v]), _name(v))
            out = bb.emit_output(remap[head])
        bb.emit_func_output(out)
    return bb.get()["main"]


def _in_call_order(func, chains: list) -> list[Offload]:
    """The chains' reports in the order the VM runs their calls: each call replaces its head's
    binding, which can come later than another chain's (a residual add waits for the shortcut's
    conv), so the planner's order (by root op) is not the run order the profile sees."""
    pos: dict[relax.Var, int] = {}
    for block in func.body.blocks:
        for b in block.bindings:
            pos[b.var] = len(pos)
    return [c.report for c in sorted(chains, key=lambda c: pos.get(c.head, len(pos)))]


# ---- analysis ------------------------------------------------------------------------------


def static_shape(expr) -> list[int] | None:
    """An expression's shape as ints, or None where it is symbolic or unknown."""
    dims = _shape(expr)
    return [int(v.value) for v in dims] if dims is not None and all(hasattr(v, "value") for v in dims) else None


def constant_value(expr):
    """A Relax constant's tensor (tvm-ffi), or None for anything else."""
    return expr.value if isinstance(expr, _Constant) else None


def _const_array(expr):
    return expr.value.numpy() if isinstance(expr, _Constant) else None


@dataclass
class _Chain:
    kind: str
    head: object  # the relax Var whose binding becomes the library call
    args: list  # relax exprs (vars of the original function, or new constants)
    attrs: list
    report: Offload
    bindings: list = field(default_factory=list)  # the original vars the call replaces, root to head


class _Planner:
    """Finds chains: walks the dataflow bindings once, tracking single-use vars."""

    def __init__(self, dtypes, kinds):
        self.dtypes = dtypes
        self.kinds = kinds
        self.chains: dict = {}
        self.ordered: list[_Chain] = []
        self.claimed: set = set()  # vars already inside a chain (each binding joins at most one)

    def visit_expr(self, func) -> None:
        bindings = []
        for block in func.body.blocks:
            bindings.extend(block.bindings)
        values = {}
        users: dict = {}
        for b in bindings:
            if not isinstance(b, relax.VarBinding):
                continue
            values[b.var] = b.value
            for v in _free_vars(b.value):
                users.setdefault(v, []).append(b.var)
        for v in _free_vars(func.body.body):
            users.setdefault(v, []).append(None)  # the function's result: never fold into it
        self.values, self.users = values, users
        self.pos = {v: i for i, v in enumerate(values)}
        for b in bindings:
            if isinstance(b, relax.VarBinding):
                self._try(b.var, b.value)

    def _sole_user(self, var):
        u = self.users.get(var, [])
        return u[0] if len(u) == 1 and u[0] is not None else None

    def _try(self, var, value) -> None:
        if var in self.claimed:
            return
        op = _op_name(value)
        if op in ("relax.mean", "relax.nn.adaptive_avg_pool2d") and "squeeze_excite" in self.kinds:
            self._squeeze_excite(var, value)
        elif op == "relax.nn.conv2d" and "conv2d" in self.kinds:
            self._conv(var, value)
        elif op == "relax.matmul" and ("linear" in self.kinds or "matmul" in self.kinds):
            self._matmul(var, value)
        elif op == "relax.nn.max_pool2d" and "max_pool2d" in self.kinds:
            self._max_pool(var, value)

    def _users(self, var) -> list:
        return self.users.get(var, [])

    def _epilogue(self, var, channels: int, affine: bool):
        """Extend from `var` through per-channel affine ops (a bias; with `affine`, also the scale
        and shift of an unfolded BatchNorm), then a residual add, then one activation.
        Returns (head, scale, shift, other, unary, names)."""
        head, scale, shift, other, unary, names = var, None, None, None, 0, []
        while True:
            nxt = self._sole_user(head)
            if nxt is None or nxt in self.claimed:
                break
            val = self.values[nxt]
            op = _op_name(val)
            if op in _AFFINE and len(val.args) == 2 and other is None and (affine or op == "relax.add"):
                this, that = val.args
                if not this.same_as(head):
                    if op in ("relax.subtract", "relax.divide"):
                        break  # c - x, c / x: not affine in x
                    this, that = that, this
                arr = _channel_const(that, channels, _dtype(head))
                if arr is not None:
                    if not affine and (shift is not None or op != "relax.add"):
                        break
                    scale, shift = _fold_affine(op, arr, scale, shift, channels)
                    head = nxt
                    names.append("bias" if op in ("relax.add", "relax.subtract") else "scale")
                    continue
            if op == "relax.reshape" and not affine and _shape(nxt) and _shape(head) and _same_dim(_shape(nxt)[-1], _shape(head)[-1]):
                # [M, N] <-> [..., N]: the linear's output is the same buffer in either shape
                head = nxt
                continue
            if op == "relax.add" and len(val.args) == 2 and other is None:
                a, b = val.args
                that = b if a.same_as(head) else a
                if not isinstance(that, _Constant) and _dtype(that) == _dtype(head) and _same_shape(that, head):
                    other, head = that, nxt
                    names.append("add")
                    continue
            break
        code, end = self._activation(head)
        if code:
            unary, head = code, end
            names.append(_UNARY_NAMES[code])
        names = [n for i, n in enumerate(names) if n != "scale" or "scale" not in names[:i]]
        return head, scale, shift, other, unary, [n for i, n in enumerate(names) if n != "bias" or "bias" not in names[:i]]

    def _activation(self, var):
        """The activation that consumes `var` alone (relu, relu6, sigmoid, tanh, gelu, silu,
        hardswish): (code, last var of the activation) or (0, var)."""
        users = self._users(var)
        if any(u is None or u in self.claimed for u in users):
            return 0, var
        if len(users) == 1:
            u = users[0]
            val = self.values[u]
            op = _op_name(val)
            if op in ("relax.nn.relu", "relax.sigmoid", "relax.tanh", "relax.nn.gelu", "relax.nn.gelu_tanh"):
                return UNARY_CODES[op], u
            if op == "relax.maximum" and _scalar_arg(val, var) == 0.0:
                nxt = self._sole_user(u)
                if nxt is not None and nxt not in self.claimed and _op_name(self.values[nxt]) == "relax.minimum" and _scalar_arg(self.values[nxt], u) == 6.0:
                    return UNARY_CODES["clip06"], nxt
                return UNARY_CODES["relax.nn.relu"], u
            return 0, var
        if len(users) == 2:
            # silu: x * sigmoid(x)
            for s in users:
                if _op_name(self.values[s]) == "relax.sigmoid":
                    m = self._sole_user(s)
                    other = [u for u in users if not u.same_as(s)][0]
                    if m is not None and m.same_as(other) and _op_name(self.values[m]) == "relax.multiply":
                        return UNARY_CODES["silu"], m
            # hardswish: x * min(max(x + 3, 0), 6) / 6
            for a in users:
                if _op_name(self.values[a]) == "relax.add" and _scalar_arg(self.values[a], var) == 3.0:
                    mx = self._sole_user(a)
                    if mx is None or _op_name(self.values[mx]) != "relax.maximum" or _scalar_arg(self.values[mx], a) != 0.0:
                        continue
                    mn = self._sole_user(mx)
                    if mn is None or _op_name(self.values[mn]) != "relax.minimum" or _scalar_arg(self.values[mn], mx) != 6.0:
                        continue
                    m = self._sole_user(mn)
                    other = [u for u in users if not u.same_as(a)][0]
                    if m is None or not m.same_as(other) or _op_name(self.values[m]) != "relax.multiply":
                        continue
                    d = self._sole_user(m)
                    if d is not None and _op_name(self.values[d]) == "relax.divide" and _scalar_arg(self.values[d], m) == 6.0:
                        return UNARY_CODES["hardswish"], d
        return 0, var

    def _conv(self, var, call) -> None:
        x, w = call.args
        a = call.attrs
        if (a.data_layout, a.kernel_layout, a.out_layout) != ("NHWC", "OHWI", "NHWC") or not isinstance(w, _Constant):
            return
        dt = _dtype(x)
        if dt not in self.dtypes or _dtype(w) != dt or str(a.out_dtype) not in ("", dt):
            return
        pad = [int(p) for p in a.padding]
        if len(pad) != 4 or pad[0] != pad[2] or pad[1] != pad[3]:
            return  # oneDNN's padding is symmetric
        warr = _const_array(w)  # OHWI
        oc = warr.shape[0]
        head, scale, bias, other, unary, names = self._epilogue(var, oc, affine=True)
        if scale is not None:  # an unfolded BatchNorm's scale: into the weights
            warr = warr * scale.reshape(oc, 1, 1, 1).astype(warr.dtype)
        w_oihw = relax.const(np.ascontiguousarray(warr.transpose(0, 3, 1, 2)), dt)
        args = [x, w_oihw] + ([relax.const(bias, dt)] if bias is not None else []) + ([other] if other is not None else [])
        attrs = [int(a.strides[0]), int(a.strides[1]), pad[0], pad[1], int(a.dilation[0]), int(a.dilation[1]), int(a.groups), unary, int(bias is not None), int(other is not None)]
        kind = "conv2d" if int(a.groups) == 1 else ("depthwise_conv2d" if int(a.groups) == warr.shape[0] and warr.shape[3] == 1 else "grouped_conv2d")
        # library_winograd.cc's WinogradApplies: channels in blocks of 16
        winograd_ok = kind == "conv2d" and dt == "float32" and warr.shape[1:3] == (3, 3) and attrs[:2] == [1, 1] and attrs[4:6] == [1, 1] and oc % 16 == 0 and warr.shape[3] % 16 == 0
        self._add(var, head, "conv2d", "torchtvm.conv2d", args, attrs, Offload(_name(head), kind, _shape_json(head), names, winograd_ok=winograd_ok))

    def _squeeze_excite(self, var, call) -> None:
        """A squeeze-excite block rooted at its global average pool `var`: pool over the spatial
        axes of an NHWC x, a 1x1 convolution (bias, activation), another (bias, gate), then x times
        the gate. One torchtvm.squeeze_excite call; placement times it against PyTorch's kernels
        and TVM's fused kernel."""
        x = call.args[0]
        xs = static_shape(x)
        if xs is None or len(xs) != 4 or _dtype(x) != "float32" or "float32" not in self.dtypes:
            return
        if _op_name(call) == "relax.mean":
            a = call.attrs
            if not a.keepdims or a.axis is None or sorted(int(i) for i in a.axis) != [1, 2]:
                return
        elif str(call.attrs.layout) != "NHWC" or [int(v) for v in call.attrs.output_size or []] != [1, 1]:
            return
        c = xs[3]
        weights: list[tuple] = []
        head = var
        for step in range(2):
            conv = self._sole_user(head)
            if conv is None or conv in self.claimed or _op_name(self.values[conv]) != "relax.nn.conv2d":
                return
            value = self.values[conv]
            w, at = value.args[1], value.attrs
            warr = _const_array(w)
            if (
                warr is None
                or _dtype(w) != "float32"
                or (at.data_layout, at.kernel_layout, at.out_layout) != ("NHWC", "OHWI", "NHWC")
                or warr.shape[1:3] != (1, 1)
                or int(at.groups) != 1
                or warr.shape[3] != (c if step == 0 else weights[0][0].shape[1])
                or (step == 1 and warr.shape[0] != c)
            ):
                return
            oc = warr.shape[0]
            end, scale, bias, other, unary, _ = self._epilogue(conv, oc, affine=True)
            if other is not None:
                return
            bias = bias if bias is not None else np.zeros(oc, warr.dtype)
            div = self._sole_user(end)
            if step == 1 and unary == 2 and div is not None and div not in self.claimed and _op_name(self.values[div]) == "relax.divide" and _scalar_arg(self.values[div], end) == 6.0:
                # hardsigmoid as torch's importer writes it, relu6(z + 3) / 6: the epilogue took
                # the + 3 into the bias, which the kernel's hardsigmoid adds itself
                unary, end, bias = 9, div, bias - np.float32(3.0)
            if unary not in _SE_UNARY or (step == 1 and unary not in (3, 9)):
                return
            w2d = warr.reshape(oc, -1) * (scale.reshape(oc, 1).astype(warr.dtype) if scale is not None else 1)
            weights.append((np.ascontiguousarray(w2d.T), bias, unary))
            head = end
        mul = self._sole_user(head)
        if mul is None or mul in self.claimed or _op_name(self.values[mul]) != "relax.multiply":
            return
        a, b = self.values[mul].args
        if not ((a.same_as(x) and b.same_as(head)) or (b.same_as(x) and a.same_as(head))) or static_shape(mul) != xs:
            return
        (w1, b1, act), (w2, b2, gate) = weights
        args = [x] + [relax.const(np.asarray(t, "float32"), "float32") for t in (w1, b1, w2, b2)]
        names = ["pool", f"1x1 conv {w1.shape[0]}->{w1.shape[1]}", _UNARY_NAMES.get(act, ""), f"1x1 conv {w2.shape[0]}->{w2.shape[1]}", _UNARY_NAMES[gate], "scale"]
        self._add(var, mul, "squeeze_excite", "torchtvm.squeeze_excite", args, [act, gate], Offload(_name(mul), "squeeze_excite", _shape_json(mul), [n for n in names if n]))

    def _max_pool(self, var, call) -> None:
        a = call.attrs
        layout = str(a.layout)
        if layout not in ("NHWC", "NCHW", "NWHC") or str(a.out_layout) != layout or _dtype(var) not in self.dtypes:
            return
        pad = [int(p) for p in a.padding]
        if len(pad) != 4 or pad[0] != pad[2] or pad[1] != pad[3]:
            return  # PyTorch's padding is symmetric
        pairs = [[int(k) for k in a.pool_size], [int(s) for s in a.strides], pad[:2], [int(d) for d in a.dilation]]
        if layout == "NWHC":
            # A 1-D pool after the layout pass ([N, L, 1, C]): the NHWC kernel with the spatial
            # dims' roles swapped reads the same buffer.
            pairs = [p[::-1] for p in pairs]
        attrs = [*pairs[0], *pairs[1], *pairs[2], *pairs[3], int(bool(a.ceil_mode)), int(layout != "NCHW")]
        self._add(var, var, "max_pool2d", "torchtvm.max_pool2d", [call.args[0]], attrs, Offload(_name(var), "max_pool2d", _shape_json(var), []))

    def _matmul(self, var, call) -> None:
        x, w = call.args
        dt = _dtype(x)
        if dt not in self.dtypes or _dtype(w) != dt or str(call.attrs.out_dtype) not in ("", dt):
            return
        xs, ws = _shape(x), _shape(w)
        if xs is None or ws is None or len(xs) < 1 or len(ws) < 2:
            return
        if isinstance(w, _Constant) and len(ws) > 2 and len(xs) >= len(ws) - 0:
            # torch.export's 3-D linear arrives as a bmm with the weight broadcast over the batch,
            # which FoldConstant materialised: one [K, N] matrix repeated.
            arr = _const_array(w)
            flat = arr.reshape(-1, *arr.shape[-2:])
            if not (flat == flat[:1]).all():
                return
            w, ws = relax.const(np.ascontiguousarray(flat[0]), dt), [ws[-2], ws[-1]]
        if isinstance(w, _Constant) and len(ws) == 2 and "linear" in self.kinds:
            n = int(ws[1])
            head, _, bias, other, unary, names = self._epilogue(var, n, affine=False)
            args = [x, w] + ([relax.const(bias, dt)] if bias is not None else []) + ([other] if other is not None else [])
            self._add(var, head, "linear", "torchtvm.linear", args, [unary, int(bias is not None), int(other is not None)], Offload(_name(head), "linear", _shape_json(head), names))
        elif not isinstance(w, _Constant) and not isinstance(x, _Constant) and len(xs) >= 2 and "matmul" in self.kinds:
            unary, head = self._activation(var)
            names = [_UNARY_NAMES[unary]] if unary else []
            self._add(var, head, "matmul", "torchtvm.matmul", [x, w], [unary], Offload(_name(head), "matmul", _shape_json(head), names))

    def _add(self, root, head, kind, func, args, attrs, report) -> None:
        report.func = func
        report.vars = _chain_vars(root, head, self.values, args)
        chain = _Chain(kind, head, args, attrs, report)
        # Claim every binding between the root op and the head, so that no other chain takes them.
        inputs = [a for a in args if not isinstance(a, _Constant)]
        stack = [head]
        while stack:
            v = stack.pop()
            if v in self.claimed:
                continue
            self.claimed.add(v)
            chain.bindings.append(v)
            if v.same_as(root):
                continue
            for a in getattr(self.values.get(v), "args", []):
                if a in self.values and not any(a.same_as(i) for i in inputs):
                    stack.append(a)
        chain.bindings.sort(key=self.pos.__getitem__)
        self.chains[head] = chain
        self.ordered.append(chain)


def _chain_vars(root, head, values: dict, args) -> list[str]:
    """The names of the bindings from `root` to `head` (the ones a chain replaces), root first."""
    inputs = [a for a in args if not isinstance(a, _Constant)]
    seen: list[relax.Var] = []
    stack = [head]
    while stack:
        v = stack.pop()
        if any(v.same_as(s) for s in seen):
            continue
        seen.append(v)
        if v.same_as(root):
            continue
        for a in getattr(values.get(v), "args", []):
            if a in values and not any(a.same_as(i) for i in inputs):
                stack.append(a)
    order = {v: i for i, v in enumerate(values)}
    return [_name(v) for v in sorted(seen, key=lambda v: order.get(v, -1))]


_UNARY_NAMES = {1: "relu", 2: "relu6", 3: "sigmoid", 4: "tanh", 5: "hardswish", 6: "gelu", 7: "gelu_tanh", 8: "silu", 9: "hardsigmoid"}

# The activations torchtvm.squeeze_excite applies (library_squeeze_excite.cc Activate).
_SE_UNARY = (0, 1, 2, 3, 5, 8, 9)


_AFFINE = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide")


def _channel_const(expr, channels: int, dtype: str):
    """A constant that broadcasts along the last (channel) axis only, as a flat [channels] array."""
    arr = _const_array(expr)
    if arr is None or _dtype(expr) != dtype:
        return None
    if arr.size == 1:
        return np.full(channels, arr.reshape(()), dtype=arr.dtype)
    if arr.size != channels or arr.shape[-1] != channels:
        return None
    return arr.reshape(channels)


def _fold_affine(op: str, c, scale, shift, channels: int):
    """y = x * scale + shift, then `op` with the per-channel constant c."""
    scale = np.ones(channels, c.dtype) if scale is None else scale
    shift = np.zeros(channels, c.dtype) if shift is None else shift
    if op == "relax.add":
        return scale, shift + c
    if op == "relax.subtract":
        return scale, shift - c
    if op == "relax.multiply":
        return scale * c, shift * c
    return scale / c, shift / c


def _scalar_arg(call, var):
    """The scalar constant that `call` combines with `var` (either operand order), or None."""
    if len(call.args) != 2:
        return None
    a, b = call.args
    other = b if a.same_as(var) else a if b.same_as(var) else None
    arr = _const_array(other) if other is not None else None
    if arr is None or arr.size != 1 or (other is a and _op_name(call) in ("relax.subtract", "relax.divide")):
        return None
    return float(arr.reshape(()))


def _same_dim(a, b) -> bool:
    from tvm_ffi import structural_equal

    return bool(structural_equal(a, b))


def _same_shape(a, b) -> bool:
    from tvm_ffi import structural_equal

    sa, sb = _shape(a), _shape(b)
    return sa is not None and sb is not None and len(sa) == len(sb) and all(structural_equal(x, y) for x, y in zip(sa, sb))


# ---- rewrite -------------------------------------------------------------------------------


def _rewriter():
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Rewriter(PyExprMutator):
        def __init__(self, mod, chains):
            super().__init__(mod)
            self.chains = chains

        def visit_var_binding_(self, binding):
            chain = self.chains.get(binding.var)
            if chain is None:
                return super().visit_var_binding_(binding)
            args = [a if isinstance(a, _Constant) else self.visit_expr(a) for a in chain.args]
            call = relax.op.call_dps_packed(chain.report.func, relax.Tuple(args + [relax.ShapeExpr(chain.attrs)]), out_ty=binding.var.ty)
            self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(call)))

    return Rewriter
