"""Whole LSTM and GRU layers as library kernels.

torch's decompositions unroll `aten.lstm` / `aten.gru` into one cell per time step (two matmuls and
a handful of elementwise ops each), which TVM then runs op by op. Instead the importer keeps each
nn.LSTM / nn.GRU whole (decompositions.py leaves them out) and these converters turn it into one
`R.call_dps_packed("torchtvm.lstm" | "torchtvm.gru")`, which native/runtime/src/library_recurrent.cc
runs as one recurrence over all steps. Nothing is unrolled, and the batch may be symbolic.

Placement `tvm` (and a target without the runtime library) gets TVM's own ops instead: `expand`
unrolls each call into per-step cells, as torch's decomposition would have (torch.export fixes the
sequence length anyway). Non-float32 layers are unrolled at import.
"""

from __future__ import annotations

from tvm import relax, tirx

from torchtvm.backend.offload import Offload
from torchtvm.backend.relax_ir import dtype_of as _dtype
from torchtvm.backend.relax_ir import op_name as _op_name
from torchtvm.backend.relax_ir import var_name as _name

FUNCS = {"lstm": "torchtvm.lstm", "gru": "torchtvm.gru"}
_KIND_OF = {v: k for k, v in FUNCS.items()}


def lstm_converter(node, importer):
    return _convert("lstm", node, importer)


def gru_converter(node, importer):
    return _convert("gru", node, importer)


# Keys of the importer's convert map (the FX targets' names).
CONVERTERS = {"lstm.input": lstm_converter, "gru.input": gru_converter}


def _convert(kind: str, node, importer):
    args = importer.retrieve_args(node)
    x, hx, params = args[0], args[1], list(args[2])
    has_biases, num_layers, _dropout, _train, bidirectional, batch_first = args[3:9]
    states = list(hx) if kind == "lstm" else [hx]
    if len(_shape(x)) != 3:
        raise ValueError(f"aten.{kind} was given a {len(_shape(x))}-D input; only batched (3-D) inputs are supported.")
    attrs = [int(bool(has_biases)), int(num_layers), int(bool(bidirectional)), int(bool(batch_first))]
    bb = importer.block_builder
    if _dtype(x) != "float32":  # the library takes float32; other dtypes run TVM's ops
        return _unroll(bb, kind, x, states, params, attrs)
    call = relax.op.call_dps_packed(FUNCS[kind], relax.Tuple([x, *states, *params, relax.ShapeExpr(attrs)]), out_ty=_out_types(kind, x, params, attrs))
    return bb.emit(call)


def _shape(expr) -> list:
    return [int(v) if isinstance(v, tirx.IntImm) else v for v in expr.ty.shape.values]


def _out_types(kind: str, x, params: list, attrs: list) -> list:
    _, layers, bidirectional, batch_first = attrs
    dirs = 2 if bidirectional else 1
    a, b, _ = _shape(x)
    steps, batch = (b, a) if batch_first else (a, b)
    gates, out_size = _shape(params[1])  # w_hh: [gates * hidden, hidden or proj_size]
    dt = _dtype(x)
    out = relax.TensorType([batch, steps, dirs * out_size] if batch_first else [steps, batch, dirs * out_size], dt)
    h = relax.TensorType([layers * dirs, batch, out_size], dt)
    if kind == "gru":
        return [out, h]
    return [out, h, relax.TensorType([layers * dirs, batch, gates // 4], dt)]


def calls(mod) -> list:
    """The LSTM / GRU library calls in `main`, as backend.library.Offload reports, in binding order."""

    out = []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            kind = _library_kind(getattr(b, "value", None))
            if kind:
                shape = [int(d) if isinstance(d, tirx.IntImm) else str(d) for d in b.var.ty.fields[0].shape.values]
                out.append(Offload(_name(b.var), kind, shape, [], FUNCS[kind], [_name(b.var)]))
    return out


def _library_kind(value) -> str | None:
    if _op_name(value) != "relax.call_dps_packed":
        return None
    func = value.args[0]
    return _KIND_OF.get(str(getattr(func, "global_symbol", "")))


def expand(mod):
    """Every LSTM / GRU library call in `main` unrolled into TVM's ops (placement `tvm`)."""
    found = [1 for block in mod["main"].body.blocks for b in block.bindings if _library_kind(getattr(b, "value", None))]
    if not found:
        return mod
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Expand(PyExprMutator):
        def visit_var_binding_(self, binding):
            kind = _library_kind(binding.value)
            if kind is None:
                return super().visit_var_binding_(binding)
            args = [self.visit_expr(a) for a in binding.value.args[1].fields]
            attrs = [int(v) for v in args[-1].values][:4]  # the algorithm (5th) is not TVM's concern
            states = 2 if kind == "lstm" else 1
            result = _unroll(self.builder_, kind, args[0], args[1 : 1 + states], args[1 + states : -1], attrs)
            self.set_var_remap(binding.var, result)

    mod = mod.clone()
    mod["main"] = Expand(mod).visit_expr(mod["main"])
    return relax.transform.CanonicalizeBindings()(mod)


def _unroll(bb, kind: str, x, states: list, params: list, attrs: list):
    """The layer as per-step cells in TVM's ops, with torch's equations; returns a tuple var
    (output, h_n[, c_n])."""
    op = relax.op
    has_biases, layers, bidirectional, batch_first = attrs
    dirs = 2 if bidirectional else 1
    seq = bb.emit(op.permute_dims(x, [1, 0, 2])) if batch_first else x
    steps = _shape(seq)[0]
    if not isinstance(steps, int):
        raise ValueError(f"An {kind.upper()} over a symbolic sequence length runs only as a library kernel (placement auto or library); TVM's ops need the length fixed.")
    gates = 4 if kind == "lstm" else 3
    per = len(params) // (layers * dirs)
    proj = kind == "lstm" and per == (5 if has_biases else 3)

    def linear(v, w, b=None):
        y = bb.emit(op.matmul(v, bb.emit(op.permute_dims(w, [1, 0]))))
        return bb.emit(op.add(y, b)) if b is not None else y

    def chunks(v):
        parts = bb.emit(op.split(v, gates, axis=-1))
        return [bb.emit(relax.TupleGetItem(parts, i)) for i in range(gates)]

    hs_n, cs_n = [], []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            p = params[(layer * dirs + d) * per : (layer * dirs + d + 1) * per]
            w_ih, w_hh = p[0], p[1]
            b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
            idx = relax.const(layer * dirs + d, "int64")
            h = bb.emit(op.take(states[0], idx, axis=0))
            c = bb.emit(op.take(states[1], idx, axis=0)) if kind == "lstm" else None
            xg = linear(seq, w_ih, b_ih)  # the input's gates for every step at once
            hs = [None] * steps
            for t in reversed(range(steps)) if d == 1 else range(steps):
                gx = chunks(bb.emit(op.take(xg, relax.const(t, "int64"), axis=0)))
                gh = chunks(linear(h, w_hh, b_hh))
                if kind == "lstm":
                    i, f, g, o = (bb.emit(op.add(a, b)) for a, b in zip(gx, gh))
                    c = bb.emit(op.add(op.multiply(op.sigmoid(f), c), op.multiply(op.sigmoid(i), op.tanh(g))))
                    h = bb.emit(op.multiply(op.sigmoid(o), op.tanh(c)))
                    if proj:
                        h = linear(h, p[-1])
                else:
                    r = bb.emit(op.sigmoid(op.add(gx[0], gh[0])))
                    z = bb.emit(op.sigmoid(op.add(gx[1], gh[1])))
                    n = bb.emit(op.tanh(op.add(gx[2], op.multiply(r, gh[2]))))
                    h = bb.emit(op.add(n, op.multiply(z, op.subtract(h, n))))  # (1 - z) * n + z * h
                hs[t] = h
            outs.append(bb.emit(op.stack(hs, axis=0)))
            hs_n.append(h)
            cs_n.append(c)
        seq = bb.emit(op.concat(outs, axis=2)) if dirs == 2 else outs[0]
    out = bb.emit(op.permute_dims(seq, [1, 0, 2])) if batch_first else seq
    fields = [out, bb.emit(op.stack(hs_n, axis=0))]
    if kind == "lstm":
        fields.append(bb.emit(op.stack(cs_n, axis=0)))
    return bb.emit(relax.Tuple(fields))
