"""PyTorch's own kernel as a candidate for ops the runtime has no kernel of its own for: each such
op can become a `torchtvm.aten` call (native/runtime/src/library_aten.cc), which runs the ATen op
through torch's dispatcher on TVM's buffers. Placement times the call against TVM's kernel for the
op (measure.time_aten_ops) and keeps the faster; nothing here decides by itself.

Each entry of _CONVERTERS maps a Relax op to its ATen op and boxed arguments in schema order
(the template library_aten.cc reads): the norms, pooling, transposed convolution, softmax,
reductions, cumulative sums, transposes and gathers (an embedding). An op with an out= variant writes into TVM's buffer; another's result
is copied there once. A buffer in channels-last order is passed as a permuted view, in the layout
the ATen op expects, and its output written back through the same view. Elementwise ops are not
offered: TVM fuses them into the kernels around them, which one ATen call per op cannot match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tvm import relax
from tvm.ir.expr import StringImm  # relax string literals live in tvm.ir since 0.27

from torchtvm.backend.offload import Offload
from torchtvm.backend.relax_ir import dtype_of, op_name, shape_json, var_name

FUNC = "torchtvm.aten"
_DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class AtenCall:
    """One op of the graph as it would run as an ATen call."""

    name: str  # the var its binding defines (the op's name in the placement report)
    kind: str  # group_norm | instance_norm | avg_pool2d | conv_transpose2d ...
    op: str  # the ATen op ("aten::group_norm")
    template: str  # library_aten.cc's template
    tensors: list  # the Relax tensor arguments, in template order
    out_ty: Any
    expr: Any  # the op's call as TVM runs it (a relax.Call)
    # The elementwise ops after it that TVM fuses into its kernel (an activation): timed with both
    # candidates, so that TVM's fused kernel is weighed against the ATen call plus their kernel.
    epilogue: list = field(default_factory=list)  # (var, value) bindings
    # The runtime's own kernel for the op, where it has one: (torch op, template) for the same
    # torchtvm.aten call and tensors (a third candidate, "own").
    own: tuple[str, str] | None = None
    # How many bindings of `epilogue` the own kernel applies itself (a GroupNorm's activation).
    own_fuses: int = 0
    var: Any = None  # the var its binding defines


def _t(perm=None) -> str:
    return "T" if perm is None or perm == list(range(len(perm))) else "T:" + ",".join(str(p) for p in perm)


def _ints(values) -> str:
    return "L" + ",".join(str(int(v)) for v in values)


def _channels_first(ndim: int, axis: int) -> list[int]:
    """The permutation that views a buffer with channels at `axis` as [N, C, ...]."""
    return [0, axis] + [d for d in range(1, ndim) if d != axis]


def _layout_perm(layout: str) -> list[int]:
    """The permutation that views a buffer in a 2-D data layout ("NHWC") as NCHW."""
    return [layout.index(c) for c in "NCHW"]


def _norm(call, kind: str):
    a = call.attrs
    x, gamma, beta = call.args
    ndim = len(shape_json(x))
    c = int(a.channel_axis) % ndim
    axes = sorted(int(v) % ndim for v in a.axes)
    if axes != [d for d in range(ndim) if d not in (0, c)]:
        return None
    perm = _channels_first(ndim, c)
    weight = "T" if bool(a.scale) else "N"
    bias = "T" if bool(a.center) else "N"
    tensors = [x] + ([gamma] if a.scale else []) + ([beta] if a.center else [])
    eps = f"f{float(a.epsilon)!r}"
    if kind == "group_norm":
        args = [_t(perm), f"i{int(a.num_groups)}", weight, bias, eps, "b0"]
        return "aten::group_norm", args, tensors, [perm]
    # instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, cudnn_enabled)
    return "aten::instance_norm", [_t(perm), weight, bias, "N", "N", "b1", "f0.1", eps, "b0"], tensors, [perm]


# The activations the own GroupNorm applies in its last pass (library_norm.cc), by the code it takes
# (backend/library.py UNARY_CODES).
_NORM_ACTIVATIONS = {"relax.nn.relu": 1, "relax.sigmoid": 3, "relax.nn.gelu": 6, "relax.nn.gelu_tanh": 7, "relax.nn.silu": 8}


def _own_kernel(call, call_var, kind: str, epilogue: list) -> tuple[tuple[str, str] | None, int]:
    """The runtime's own kernel for `call`, as (torch op, template) over the same tensors as its
    ATen call, and how many of its epilogue bindings it applies itself: LayerNorm with a weight
    and a bias, by torch's kernel writing into TVM's buffer (no copy, library_attention.cc); a
    float32 mean that keeps the innermost axis (a global average pool of NHWC), library_reduce.cc;
    GroupNorm on a float32 buffer with the channels innermost (after a library convolution), with
    the activation that follows it, library_norm.cc; a float32 NHWC transposed convolution whose
    kernel equals its stride (a UNet's up-convolution), library_upsample.cc."""
    if kind == "layer_norm" and call.attrs.scale and call.attrs.center:
        # torch's LayerNormKernel writing into TVM's buffer (library_attention.cc), no copy
        n = len(call.attrs.axes)
        return ("torchtvm::layer_norm_out", f"T;i{n};T;T;f{float(call.attrs.epsilon)!r};O|"), 0
    if dtype_of(call) != "float32":
        return None, 0
    if kind == "mean":
        return _own_mean(call), 0
    if kind == "conv_transpose2d":
        a = call.attrs
        kernel = shape_json(call.args[1])[2:]
        plain = all(int(p) == 0 for p in a.padding) and all(int(p) == 0 for p in a.output_padding) and all(int(d) == 1 for d in a.dilation) and int(a.groups) == 1
        if str(a.data_layout) != "NHWC" or str(a.out_layout) != "NHWC" or str(a.kernel_layout) != "IOHW" or not plain or [int(s) for s in a.strides] != kernel:
            return None, 0
        return ("torchtvm::conv_transpose2d_channels_last", f"T;T;N;{_ints(a.strides)}|"), 0
    if kind != "group_norm":
        return None, 0
    a = call.attrs
    ndim = len(shape_json(call.args[0]))
    if int(a.channel_axis) % ndim != ndim - 1 or ndim < 2:
        return None, 0
    weight = "T" if bool(a.scale) else "N"
    bias = "T" if bool(a.center) else "N"
    first = op_name(epilogue[0][1]) if epilogue else ""
    silu = len(epilogue) >= 2 and first == "relax.sigmoid" and op_name(epilogue[1][1]) == "relax.multiply" and epilogue[0][1].args[0].same_as(call_var)
    unary = 8 if silu else _NORM_ACTIVATIONS.get(first or "", 0)
    return ("torchtvm::group_norm_channels_last", f"T;i{int(a.num_groups)};{weight};{bias};f{float(a.epsilon)!r};i{unary}|"), 2 if silu else int(unary > 0)


def _own_mean(call) -> tuple[str, str] | None:
    """library_reduce.cc's mean, where it applies: adjacent axes before the innermost, which is
    kept with at least 8 values per row (its vectors)."""
    shape = shape_json(call.args[0])
    ndim = len(shape)
    if call.attrs.axis is None or not len(call.attrs.axis):
        return None
    axes = sorted(int(v) % ndim for v in call.attrs.axis)
    inner = 1
    for d in shape[axes[-1] + 1 :]:
        inner *= int(d)
    if axes[-1] >= ndim - 1 or axes != list(range(axes[0], axes[-1] + 1)) or inner < 8:
        return None
    return "torchtvm::mean_rows_out", f"T;{_ints(axes)};b{int(bool(call.attrs.keepdims))};O|"


def _avg_pool2d(call, kind: str):
    a = call.attrs
    pad = [int(p) for p in a.padding]
    if any(int(d) != 1 for d in a.dilation) or pad[0] != pad[2] or pad[1] != pad[3] or str(a.out_layout) != str(a.layout):
        return None
    perm = _layout_perm(str(a.layout))
    # avg_pool2d(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    args = [_t(perm), _ints(a.pool_size), _ints(a.strides), _ints(pad[:2]), f"b{int(bool(a.ceil_mode))}", f"b{int(bool(a.count_include_pad))}", "N"]
    return "aten::avg_pool2d", args, [call.args[0]], [perm]


def _conv_transpose2d(call, kind: str):
    a = call.attrs
    pad = [int(p) for p in a.padding]
    if str(a.kernel_layout) != "IOHW" or pad[0] != pad[2] or pad[1] != pad[3] or str(a.out_layout) != str(a.data_layout):
        return None
    perm = _layout_perm(str(a.data_layout))
    x, w = call.args
    # conv_transpose2d.input(input, weight, bias, stride, padding, output_padding, groups, dilation)
    args = [_t(perm), "T", "N", _ints(a.strides), _ints(pad[:2]), _ints(a.output_padding), f"i{int(a.groups)}", _ints(a.dilation)]
    return "aten::conv_transpose2d.input", args, [x, w], [perm]


def _layer_norm(call, kind: str):
    a = call.attrs
    x, gamma, beta = call.args
    shape = shape_json(x)
    ndim = len(shape)
    axes = sorted(int(v) % ndim for v in a.axes)
    if not axes or axes != list(range(ndim - len(axes), ndim)):
        return None  # torch normalizes over trailing dims only
    tensors = [x] + ([gamma] if a.scale else []) + ([beta] if a.center else [])
    # layer_norm(input, normalized_shape, weight, bias, eps, cudnn_enable)
    args = ["T", _ints(shape[ndim - len(axes) :]), "T" if a.scale else "N", "T" if a.center else "N", f"f{float(a.epsilon)!r}", "b0"]
    return "aten::layer_norm", args, tensors, [None]


def _softmax(call, kind: str):
    axis = int(call.attrs.axis) % len(shape_json(call.args[0]))
    # _softmax.out(self, dim, half_to_float, *, out): into TVM's buffer
    return f"aten::_{kind}.out", ["T", f"i{axis}", "b0", "O"], [call.args[0]], [None]


def _reduction(call, kind: str):
    a = call.attrs
    ndim = len(shape_json(call.args[0]))
    if a.axis is not None and len(a.axis) == 0:
        return None  # reduces nothing
    axes = [] if a.axis is None else sorted(int(v) % ndim for v in a.axis)
    keep = f"b{int(bool(a.keepdims))}"
    if kind in ("max", "min"):  # amax.out(self, dim, keepdim, *, out): dim [] is every axis
        return f"aten::a{kind}.out", ["T", _ints(axes), keep, "O"], [call.args[0]], [None]
    # mean.out / sum.IntList_out(self, dim, keepdim, dtype, *, out): dim None is every axis
    dims = "N" if a.axis is None else _ints(axes)
    return ("aten::mean.out" if kind == "mean" else "aten::sum.IntList_out"), ["T", dims, keep, "N", "O"], [call.args[0]], [None]


def _permute(call, kind: str):
    ndim = len(shape_json(call.args[0]))
    axes = list(range(ndim))[::-1] if call.attrs.axes is None else [int(v) % ndim for v in call.attrs.axes]
    # copy_(self, src, non_blocking): TVM's buffer gets the input seen through the permutation
    return "aten::copy_", ["O", _t(axes), "b0"], [call.args[0]], [None]


def _take(call, kind: str):
    table, index = call.args
    if len(shape_json(index)) != 1 or str(index.ty.dtype) not in ("int32", "int64"):
        return None  # index_select takes a 1-D index (an embedding's tokens, flattened by the importer)
    axis = int(call.attrs.axis) % len(shape_json(table)) if call.attrs.axis is not None else None
    if axis is None:
        return None
    # index_select.out(self, dim, index, *, out); an index out of range is an error, not a read
    return "aten::index_select.out", ["T", f"i{axis}", "T", "O"], [table, index], [None]


def _cumsum(call, kind: str):
    a = call.attrs
    if bool(a.exclusive) or (a.dtype is not None and str(a.dtype) not in ("", str(call.args[0].ty.dtype))):
        return None
    axis = int(a.axis) % len(shape_json(call.args[0])) if a.axis is not None else None
    if axis is None:
        return None  # over the flattened tensor
    # cumsum.out(self, dim, *, dtype, out)
    return "aten::cumsum.out", ["T", f"i{axis}", "N", "O"], [call.args[0]], [None]


_CONVERTERS = {
    "relax.nn.group_norm": ("group_norm", _norm),
    "relax.nn.instance_norm": ("instance_norm", _norm),
    "relax.nn.avg_pool2d": ("avg_pool2d", _avg_pool2d),
    "relax.nn.conv2d_transpose": ("conv_transpose2d", _conv_transpose2d),
    "relax.nn.layer_norm": ("layer_norm", _layer_norm),
    "relax.nn.softmax": ("softmax", _softmax),
    "relax.nn.log_softmax": ("log_softmax", _softmax),
    "relax.mean": ("mean", _reduction),
    "relax.sum": ("sum", _reduction),
    "relax.max": ("max", _reduction),
    "relax.min": ("min", _reduction),
    "relax.permute_dims": ("permute", _permute),
    "relax.take": ("take", _take),
    "relax.cumsum": ("cumsum", _cumsum),
}


# Elementwise ops TVM fuses after a reduction like GroupNorm (the epilogues of _epilogue).
_ELEMENTWISE = {"relax.nn.relu", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu", "relax.sigmoid", "relax.tanh", "relax.clip", "relax.maximum", "relax.minimum", "relax.add", "relax.multiply"}


def _silu(bindings: list, i: int, uses: dict) -> list:
    """SiLU of binding i's value as torch's importer writes it, x * sigmoid(x), when x has no
    other use: its two bindings, else []."""
    var = bindings[i].var
    if uses.get(var, 0) != 2 or i + 2 >= len(bindings):
        return []
    sig, mul = bindings[i + 1], bindings[i + 2]
    if op_name(sig.value) != "relax.sigmoid" or not sig.value.args[0].same_as(var) or uses.get(sig.var, 0) != 1:
        return []
    if op_name(mul.value) != "relax.multiply":
        return []
    a, b = mul.value.args
    if not ((a.same_as(var) and b.same_as(sig.var)) or (b.same_as(var) and a.same_as(sig.var))):
        return []
    return [(sig.var, sig.value), (mul.var, mul.value)]


def _epilogue(bindings: list, i: int, uses: dict) -> list:
    """The elementwise bindings that consume binding i's value alone (used once each), in order;
    a SiLU (two bindings that both read it) counts as one."""
    silu = _silu(bindings, i, uses)
    if silu:
        return silu + _epilogue(bindings, i + 2, uses)
    out = []
    var = bindings[i].var
    for b in bindings[i + 1 :]:
        v = b.value
        if uses.get(var, 0) != 1 or op_name(v) not in _ELEMENTWISE or not v.args[0].same_as(var):
            break
        if any(isinstance(a, relax.Var) for a in v.args[1:]):
            break  # a second tensor operand from elsewhere (a residual): not this op's epilogue
        out.append((b.var, v))
        var = b.var
    return out


def aten_calls(mod) -> list[AtenCall]:
    """The ops of `main` that can run as an ATen call (static shapes, float dtypes), in binding order."""
    from torchtvm.backend.relax_ir import free_vars

    out = []
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    uses: dict = {}
    for b in bindings:
        for v in free_vars(b.value):
            uses[v] = uses.get(v, 0) + 1
    for v in free_vars(mod["main"].body.body):
        uses[v] = uses.get(v, 0) + 1
    # Placement knows ops by name: a name two bindings share (TVM's layout pass names the
    # transposes it adds "lv", as it names other vars) cannot be placed, so it is not offered.
    named: dict[str, int] = {}
    for b in bindings:
        named[var_name(b.var)] = named.get(var_name(b.var), 0) + 1
    for i, b in enumerate(bindings):
        call = b.value
        entry = _CONVERTERS.get(op_name(call) or "")
        if entry is None or dtype_of(call) not in _DTYPES or named[var_name(b.var)] > 1:
            continue
        if not all(isinstance(d, int) for d in shape_json(call)) or any(not all(isinstance(d, int) for d in shape_json(t)) for t in call.args if hasattr(t.ty, "shape")):
            continue
        kind, convert = entry
        got = convert(call, kind)
        if got is None:
            continue
        op, args, tensors, outs = got
        template = ";".join(args) + "|" + ";".join("" if perm is None or perm == list(range(len(perm))) else ",".join(str(p) for p in perm) for perm in outs)
        epilogue = _epilogue(bindings, i, uses)
        own, fuses = _own_kernel(call, b.var, kind, epilogue)
        out.append(AtenCall(var_name(b.var), kind, op, template, tensors, b.var.ty, call, epilogue, own, fuses, b.var))
    return out


def emit(call: AtenCall, own: bool = False):
    """The `torchtvm.aten` call that computes `call`'s op (by the runtime's own kernel: `own`, with
    the first `own_fuses` bindings of its epilogue)."""
    op, template = call.own if own and call.own else (call.op, call.template)
    args = [StringImm(op), StringImm(template), *call.tensors]
    return relax.op.call_dps_packed(FUNC, relax.Tuple(args), out_ty=call.out_ty)


def _fused(call: AtenCall, own: bool) -> list:
    """The epilogue bindings the call applies itself (the own kernel's activation)."""
    return call.epilogue[: call.own_fuses] if own and call.own else []


def offload(mod, names: frozenset, own: frozenset = frozenset()) -> tuple[object, list[Offload]]:
    """`mod` with the ops named in `names` (from aten_calls) as ATen calls, those also in `own` by
    the runtime's own kernel. Returns (module, offloads)."""
    from tvm.relax.expr_functor import PyExprMutator, mutator

    calls = {c.name: c for c in aten_calls(mod) if c.name in names}
    if not calls:
        return mod, []
    # A call that applies its epilogue's activation itself: that binding becomes an alias of the
    # call's result (the call keeps the op's name, by which placement and the report know it).
    applied = {var_name(v): c for c in calls.values() for v, _ in _fused(c, c.name in own)}

    @mutator
    class Rewrite(PyExprMutator):
        def visit_var_binding_(self, binding):
            name = var_name(binding.var)
            if name in applied:
                self.builder_.emit_normalized(relax.VarBinding(binding.var, self.visit_expr(applied[name].var)))
                return
            c = calls.get(name)
            if c is None:
                return super().visit_var_binding_(binding)
            c.tensors = [self.visit_expr(t) for t in c.tensors]
            self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(emit(c, c.name in own))))

    mod = mod.clone()
    mod["main"] = Rewrite(mod).visit_expr(mod["main"])
    offloads = []
    for c in calls.values():
        own_kernel = c.own if c.own and c.name in own else None
        fused = _fused(c, c.name in own)
        epilogue = ["silu"] if len(fused) == 2 else [str(op_name(v)).rsplit(".", 1)[-1] for _, v in fused]  # x * sigmoid(x): one activation
        vars_ = [c.name] + [var_name(v) for v, _ in fused]
        offloads.append(Offload(c.name, c.kind, shape_json_of(c.out_ty), epilogue, FUNC, vars_, aten=own_kernel[0] if own_kernel else c.op, algorithm="own" if own_kernel else ""))
    return mod, offloads


def shape_json_of(ty) -> list:
    return [int(v) if hasattr(v, "value") else str(v) for v in ty.shape.values]


def standalone(call: AtenCall, as_aten: bool, own: bool = False):
    """The op alone, as a relax.Function of its non-constant inputs (its weights stay constants):
    TVM's op, or the ATen call (by the runtime's own kernel: `own`); for timing one against the other."""
    from dataclasses import replace

    free = [a for a in call.expr.args if isinstance(a, relax.Var)]
    params = [relax.Var(f"p{i}", v.ty) for i, v in enumerate(free)]
    remap = dict(zip(free, params))
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            if as_aten:
                value = emit(replace(call, tensors=[remap.get(t, t) for t in call.tensors]), own)
            else:
                value = relax.Call(call.expr.op, [remap.get(a, a) for a in call.expr.args], call.expr.attrs)
            last = remap[call.var] = bb.emit(value)
            for var, ew in call.epilogue[len(_fused(call, as_aten and own)) :]:
                remap[var] = last = bb.emit(relax.Call(ew.op, [remap.get(a, a) for a in ew.args], ew.attrs))
            out = bb.emit_output(last)
        bb.emit_func_output(out)
    return bb.get()["main"]
