"""Whole ops that torch has fused CPU kernels for, given to the library: attention, layer_norm and
softmax become `R.call_dps_packed` calls to the functions native/runtime/src/library_attention.cc
registers (torch's flash attention for CPU, LayerNormKernel, softmax), writing into TVM's buffers.

Attention is found as torch's SDPA decomposition imports it (and as it is written by hand):

    scores = matmul(q, k^T)          # q, k, v: views of other tensors (reshape, permute, select)
    scores = scores * c (/ c)        # and q * c1, k * c2 before the matmul: one scale in all
    scores = scores + mask           # optional additive float mask
    p = softmax(scores, -1)          # SDPA's safe softmax also zeroes all--inf rows (kept apart)
    out = matmul(p, v)               # then reshapes / permutes that merge the heads

q, k and v are passed as strided views of the tensors they were cut from (typically the packed qkv
projection), and the output is written through a strided view into the tensor its consumer reads
(the heads merged), so the glue around attention (the head split and merge, TVM copies each)
disappears with it. Views are computed on Relax shapes, which may be symbolic: the strides then are
expressions the VM evaluates per call.

`offload` runs before library.py's own planner (it takes the attention matmuls first). Attention
is on by default (WHOLE_OPS): it took 11% (encoder) and 9% (encoder_sdpa) off the whole model
(2026-11-26), and TVM has no kernel for the whole pattern. A layer_norm or softmax that no
attention took is no longer placed here by a fixed rule: library_aten.py offers PyTorch's kernel
for it (torch's LayerNormKernel or _softmax.out into TVM's buffer), and placement times that
against TVM's kernel on the machine it builds on. `kinds` still places them here on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax, tirx

from torchtvm.backend import recurrent
from torchtvm.backend.layout import prepare
from torchtvm.backend.offload import Offload
from torchtvm.backend.relax_ir import dtype_of as _dtype
from torchtvm.backend.relax_ir import free_vars as _free_vars
from torchtvm.backend.relax_ir import op_name as _op
from torchtvm.backend.relax_ir import shape_json as _shape_json
from torchtvm.backend.relax_ir import var_name as _name

# Whole ops given to the library by default (see the module docstring for how this was chosen).
WHOLE_OPS = ("attention",)
# Every whole op this module can place, and the functions they call.
FUNCS = {"attention": "torchtvm.attention", "layer_norm": "torchtvm.layer_norm", "softmax": "torchtvm.softmax"}

_VIEW_OPS = ("relax.reshape", "relax.permute_dims", "relax.take", "relax.squeeze", "relax.expand_dims", "relax.broadcast_to")


def offload(mod, dtypes: set[str], kinds=WHOLE_OPS):
    """Rewrite attention / layer_norm / softmax in `main` into library calls. Returns (module,
    offloads), the offloads as backend.library.Offload."""
    import tvm_ffi

    # A runtime library built before these kernels existed does not register them.
    kinds = [k for k in kinds if tvm_ffi.get_global_func(FUNCS[k], allow_missing=True) is not None]
    if not kinds:
        return mod, []
    func = mod["main"]
    g = _Graph(func, _free_vars)
    _reset_analyzer(func, g)
    plans: dict = {}
    claimed: set = set()
    reports = []
    for var, value in list(g.values.items()):
        if var in claimed:
            continue
        op = _op(value)
        plan = None
        if op == "relax.matmul" and "attention" in kinds:
            plan = _attention(g, var, value, dtypes, claimed)
        elif op == "relax.nn.layer_norm" and "layer_norm" in kinds:
            plan = _layer_norm(g, var, value, dtypes)
        elif op == "relax.nn.softmax" and "softmax" in kinds:
            plan = _softmax(g, var, value, dtypes)
        if plan is None:
            continue
        claimed.update(plan.claims)
        plans[plan.head] = plan
        reports.append(plan.report)
    if not plans:
        return mod, []
    mod = mod.clone()
    mod["main"] = _rewriter()(mod, plans).visit_expr(func)
    mod = relax.transform.DeadCodeElimination()(mod)
    mod = relax.transform.CanonicalizeBindings()(mod)
    return mod, reports


def in_call_order(mod, offloads: list) -> list:
    """Offloads in the order the VM runs their calls (the profile matches calls to ops by it)."""
    pos: dict[str, int] = {}
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            pos.setdefault(_name(b.var), len(pos))
    return sorted(offloads, key=lambda o: pos.get(o.name, len(pos)))


def whole_ops(offload_fn):
    """Wraps library.offload: the whole ops first (they take the attention matmuls), then its
    chains; the offloads of both, and the LSTM / GRU calls, in call order."""
    import functools

    @functools.wraps(offload_fn)
    def wrapped(mod, dtypes, *args, **kwargs):
        mod, whole = offload(mod, dtypes, WHOLE_OPS)
        whole = whole + recurrent.calls(mod)  # LSTM / GRU layers: library calls since import
        mod, chains = offload_fn(mod, dtypes, *args, **kwargs)
        return mod, in_call_order(mod, whole + list(chains)) if whole else chains

    return wrapped


def with_attention(candidates_fn):
    """Wraps library.candidates (the heavy ops the report lists): the matmuls an attention call
    takes are that attention, not ops of their own left in TVM."""
    import functools

    @functools.wraps(candidates_fn)
    def wrapped(mod, *args, **kwargs):
        rnns = recurrent.calls(mod)  # LSTM / GRU layers: placement tvm unrolls them
        if "attention" in WHOLE_OPS:
            # the chains as the build plans them: around the attention calls (same op names)
            rewritten, whole = offload(prepare(mod, convert_layout=True), {"float32", "float16", "bfloat16"}, ("attention",))
            if whole or rnns:
                return in_call_order(rewritten, candidates_fn(rewritten, *args, **kwargs) + whole + rnns)
        return in_call_order(mod, candidates_fn(mod, *args, **kwargs) + rnns) if rnns else candidates_fn(mod, *args, **kwargs)

    return wrapped


# ---- graph --------------------------------------------------------------------------------


def _shape(expr):
    shp = getattr(expr.ty, "shape", None)
    if shp is None or not hasattr(shp, "values"):
        return None
    return [int(v) if isinstance(v, tirx.IntImm) else v for v in shp.values]


def _scalar(expr):
    """The value of a scalar (one-element) float constant, or None."""
    if isinstance(expr, tvm.ir.expr.Constant):
        arr = expr.value.numpy()
        if arr.size == 1 and arr.dtype.kind == "f":
            return float(arr.reshape(()))
    return None


class _Graph:
    def __init__(self, func, free_vars):
        self.values, self.users = {}, {}
        for block in func.body.blocks:
            for b in block.bindings:
                if not isinstance(b, relax.VarBinding):
                    continue
                self.values[b.var] = b.value
                for v in free_vars(b.value):
                    self.users.setdefault(v, []).append(b.var)
        for v in free_vars(func.body.body):
            self.users.setdefault(v, []).append(None)  # the function's result

    def users_of(self, var) -> list:
        return self.users.get(var, [])

    def sole_user(self, var):
        u = self.users_of(var)
        return u[0] if len(u) == 1 and u[0] is not None else None


_ANA = None


def _ana():
    global _ANA
    if _ANA is None:
        from tvm.sym.analyzer import Analyzer

        _ANA = Analyzer()
    return _ANA


def _reset_analyzer(func, g) -> None:
    """A fresh analyzer that knows what the reshapes imply about sizes computed at run time.

    Shape arithmetic on tensors (TorchScript's `bsz * num_heads`) imports as a new symbolic var
    bound by match_cast, unrelated to the input's dims as far as the analyzer knows; a reshape
    keeps the element count, which gives each such var's value in terms of the others."""
    from tvm.sym.analyzer import Analyzer

    global _ANA
    _ANA = Analyzer()
    known = set()
    for p in func.params:
        for d in _shape(p) or []:
            if isinstance(d, tirx.Var):
                known.add(d)
    solved = True
    while solved:
        solved = False
        for var, value in g.values.items():
            if _op(value) != "relax.reshape":
                continue
            a, b = _shape(value.args[0]), _shape(var)
            if a is None or b is None:
                continue
            for this, that in ((a, b), (b, a)):
                free = [d for d in this if isinstance(d, tirx.Var) and d not in known]
                if len(free) != 1 or any(isinstance(d, tirx.Var) and d not in known for d in that):
                    continue
                if any(not isinstance(d, (int, tirx.Var)) and any(v not in known for v in _vars_of(d)) for d in this + that):
                    continue
                x = free[0]
                rest = _prod(d for d in this if d is not x)
                _ANA.bind(x, _ana().simplify(tirx.floordiv(_prod(that), rest)))
                known.add(x)
                solved = True


def _vars_of(expr) -> list:
    from tvm.tirx.analysis import undefined_vars

    return list(undefined_vars(expr))


def _eq(a, b) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return bool(_ana().can_prove_equal(a, b))


def _one(a) -> bool:
    return isinstance(a, int) and a == 1


def _prod(xs):
    out = 1
    for x in xs:
        out = out * x
    return out


def _simp(x):
    if isinstance(x, int):
        return x
    x = _ana().simplify(x)
    return int(x) if isinstance(x, tirx.IntImm) else x


# ---- strided views ------------------------------------------------------------------------


@dataclass
class _View:
    """A tensor inside a dense buffer: an element offset and, per dim, its atoms (size, stride),
    outermost first. A dim of several atoms is one that merged dims which are not contiguous to each
    other ([T, B, H, D] -> [T, B*H, D] on a permuted buffer); a later split can make it strided
    again, so views are tracked through such reshapes, not refused at them."""

    offset: object
    dims: list  # per dim: list of (size, stride); a size-1 dim has no atoms

    @staticmethod
    def dense(sizes):
        dims, s = [], 1
        for n in reversed(sizes):
            dims.append([] if _one(n) else [(n, _simp(s))])
            s = s * n
        return _View(0, list(reversed(dims)))

    @property
    def sizes(self):
        return [_simp(_prod(n for n, _ in d)) for d in self.dims]

    def permute(self, axes):
        return _View(self.offset, [self.dims[a] for a in axes])

    def reshape(self, new):
        """The same elements with shape `new` (None when the sizes do not line up)."""
        atoms = [a for d in self.dims for a in d if not _one(a[0])]
        dims = []
        for want in new:
            need, got = want, []
            while not _eq(need, 1):
                if not atoms:
                    return None
                n, s = atoms[0]
                if _eq(n, need):
                    got.append(atoms.pop(0))
                    break
                if isinstance(n, int) and isinstance(need, int):
                    if need % n == 0:
                        got.append(atoms.pop(0))
                        need //= n
                        continue
                    if n % need == 0:  # split the atom: its outer part ends this dim
                        got.append((need, _simp(s * (n // need))))
                        atoms[0] = (n // need, s)
                        break
                    return None
                rest = _simp(tirx.floordiv(need, n))
                if _eq(rest * n, need):
                    got.append(atoms.pop(0))
                    need = rest
                    continue
                inner = _simp(tirx.floordiv(n, need))
                if not _eq(inner * need, n):
                    return None
                got.append((need, _simp(s * inner)))
                atoms[0] = (inner, s)
                break
            dims.append(got)
        if atoms:
            return None
        return _View(self.offset, dims)

    def strided(self):
        """(offset, sizes, strides) when every dim is one stride, else None."""
        sizes, strides = [], []
        for d in self.dims:
            if not d:
                sizes.append(1)
                strides.append(0)
                continue
            n, s = d[-1]
            for m, t in reversed(d[:-1]):
                if not _eq(t, s * n):
                    return None
                n = n * m
            sizes.append(_simp(n))
            strides.append(_simp(s))
        return _simp(self.offset), sizes, strides


def _axes(axes, ndim):
    return [int(a) % ndim if int(a) < 0 else int(a) for a in axes]


def _forward(view: _View, value, out_var):
    """The view of a view op's result, given its input's view (None when not a view)."""
    op = _op(value)
    out = _shape(out_var)
    if out is None:
        return None
    nd = len(view.dims)
    if op == "relax.reshape":
        return view.reshape(out)
    if op == "relax.permute_dims":
        axes = value.attrs.axes
        return view.permute(list(reversed(range(nd))) if axes is None else _axes(axes, nd))
    if op == "relax.take":
        idx = value.args[1]
        if not isinstance(idx, tvm.ir.expr.Constant) or idx.value.numpy().ndim != 0:
            return None
        axis = _axes([value.attrs.axis], nd)[0]
        i, d = int(idx.value.numpy()), view.dims[axis]
        n = view.sizes[axis]
        if i < 0 and isinstance(n, int):
            i += n
        if (isinstance(n, int) and not 0 <= i < n) or len(d) > 1 or (not d and i != 0) or i < 0:
            return None
        offset = _simp(view.offset + i * d[0][1]) if d else view.offset
        return _View(offset, view.dims[:axis] + view.dims[axis + 1 :])
    if op == "relax.squeeze":
        axes = value.attrs.axis
        drop = [i for i, n in enumerate(view.sizes) if _one(n)] if axes is None else _axes(axes, nd)
        if any(view.dims[a] for a in drop):
            return None
        return _View(view.offset, [d for i, d in enumerate(view.dims) if i not in drop])
    if op == "relax.expand_dims":
        ins = set(_axes(value.attrs.axis, len(out)))
        src = iter(view.dims)
        return _View(view.offset, [[] if i in ins else next(src) for i in range(len(out))])
    if op == "relax.broadcast_to":
        lead = len(out) - nd
        if lead < 0:
            return None
        dims = [[] if _one(n) else [(n, 0)] for n in out[:lead]]
        for d, n, want in zip(view.dims, view.sizes, out[lead:]):
            if _eq(n, want):
                dims.append(d)
            elif _one(n):
                dims.append([(want, 0)])
            else:
                return None
        return _View(view.offset, dims)
    return None


def _backward(view: _View, value, in_var):
    """The view of a view op's input inside its result's buffer (None when not invertible)."""
    op = _op(value)
    shp = _shape(in_var)
    if shp is None:
        return None
    if op in ("relax.reshape", "relax.squeeze", "relax.expand_dims"):
        return view.reshape(shp)  # squeeze / expand_dims only drop or add size-1 dims
    if op == "relax.permute_dims":
        axes = value.attrs.axes
        axes = list(reversed(range(len(shp)))) if axes is None else _axes(axes, len(shp))
        inv = [0] * len(axes)
        for i, a in enumerate(axes):
            inv[a] = i
        return view.permute(inv)
    if op == "relax.broadcast_to" and len(shp) == len(view.dims) and all(_eq(a, b) for a, b in zip(shp, view.sizes)):
        return view
    return None


def _trace_input(g: _Graph, var, allow_scale: bool):
    """Walk back from `var` through view ops (and scalar multiplies / divides when `allow_scale`) to
    the tensor it was cut from. Returns (base, view of var in base, scale) or None."""
    chain, scale = [], 1.0
    cur = var
    while cur in g.values:
        value = g.values[cur]
        op = _op(value)
        if op in _VIEW_OPS:
            chain.append((value, cur))
            cur = value.args[0]
            continue
        if allow_scale and op in ("relax.multiply", "relax.divide") and len(value.args) == 2:
            a, b = value.args
            c = _scalar(b)
            if c is None and op == "relax.multiply":
                a, b = b, a
                c = _scalar(b)
            if c is not None and c != 0.0 and _dtype(cur) == _dtype(a):
                scale = scale * c if op == "relax.multiply" else scale / c
                chain.append((None, cur))
                cur = a
                continue
        break
    shp = _shape(cur)
    if shp is None or not isinstance(cur, relax.Var):
        return None
    view = _View.dense(shp)
    for value, out_var in reversed(chain):
        if value is None:
            continue  # a scale: same view
        view = _forward(view, value, out_var)
        if view is None:
            return None
    return cur, view, scale


def _batch4(view: _View | None, batch: list):
    """(offset, sizes, strides) of a [*batch, rows, cols] view as [B, H, rows, cols] (batch of rank
    0 to 2), or None when a dim is not one stride."""
    if view is None or len(view.dims) != len(batch) + 2 or len(batch) > 2:
        return None
    return _View(view.offset, [[]] * (2 - len(batch)) + view.dims).strided()


def _operand(g: _Graph, arg, allow_scale: bool):
    """A matmul operand as (base, [*batch, rows, cols] view, batch sizes, scale): a reshape that
    merged batch dims into one ([B, H, L, D] -> [B*H, L, D], as bmm wants) is looked through."""
    value = g.values.get(arg)
    shp = _shape(arg)
    if shp is None:
        return None
    if value is not None and _op(value) == "relax.reshape":
        src = value.args[0]
        s = _shape(src)
        if s is not None and len(s) >= 3 and len(shp) == 3 and _eq(s[-1], shp[-1]) and _eq(s[-2], shp[-2]) and _eq(_prod(s[:-2]), shp[0]):
            got = _trace_input(g, src, allow_scale)
            if got is not None:
                return got[0], got[1], list(s[:-2]), got[2]
    got = _trace_input(g, arg, allow_scale)
    if got is None:
        return None
    return got[0], got[1], list(shp[:-2]), got[2]


# ---- plans --------------------------------------------------------------------------------


@dataclass
class _Plan:
    head: object  # the var whose binding becomes the call
    func: str
    args: list
    attrs: list  # ints or PrimExprs
    scalar: float | None  # a float argument (scale, eps) before the output
    report: object
    claims: list = field(default_factory=list)


def _report(kind, head, epilogue, claims):

    rep = Offload(_name(head), kind, _shape_json(head), epilogue, FUNCS[kind])
    rep.vars = [_name(v) for v in claims]  # what the call replaces (provenance for the graph view)
    return rep


def _safe_softmax_guard(g: _Graph, x, p):
    """SDPA's decomposition zeroes rows whose scores are all -inf after the softmax:
    where(not(max(astype(not(x == -inf))))), 0, p). Returns (where var, guard vars) when the users of
    `x` besides the softmax are exactly that, else None."""
    others = [u for u in g.users_of(x) if u is None or _op(g.values.get(u)) != "relax.nn.softmax"]
    if len(others) != 1 or others[0] is None:
        return None
    chain = [others[0]]
    expect = ["relax.equal", "relax.logical_not", "relax.astype", "relax.max", "relax.astype", "relax.logical_not"]
    value = g.values[chain[0]]
    if _op(value) != "relax.equal" or _scalar(value.args[1]) != float("-inf") or not value.args[0].same_as(x):
        return None
    for want in expect[1:]:
        nxt = g.sole_user(chain[-1])
        if nxt is None or _op(g.values[nxt]) != want:
            return None
        chain.append(nxt)
    mx = g.values[chain[3]]
    if [int(a) for a in mx.attrs.axis] not in ([-1], [len(_shape(x)) - 1]) or not mx.attrs.keepdims:
        return None
    where = g.sole_user(chain[-1])
    if where is None or _op(g.values[where]) != "relax.where":
        return None
    c, zero, val = g.values[where].args
    if not c.same_as(chain[-1]) or not val.same_as(p):
        return None
    expect_users = [where]
    if isinstance(zero, tvm.ir.expr.Constant):
        if np.any(zero.value.numpy() != 0):
            return None
    else:  # with symbolic shapes the zeros stay full_like(p, 0)
        fill = g.values.get(zero)
        if _op(fill) != "relax.full_like" or not fill.args[0].same_as(p) or _scalar(fill.args[1]) != 0.0 or g.sole_user(zero) is None:
            return None
        expect_users.append(zero)
        chain = chain + [zero]
    users = g.users_of(p)
    if len(users) != len(expect_users) or not all(any(u is not None and u.same_as(e) for u in users) for e in expect_users):
        return None
    return where, chain


def _attention(g: _Graph, s3, call, dtypes, claimed):
    dt = _dtype(s3)
    if dt not in dtypes or str(call.attrs.out_dtype) not in ("", dt):
        return None
    qa, kta = call.args
    if _dtype(qa) != dt or _dtype(kta) != dt:
        return None
    claims = [s3]
    # scores -> (reshape, scale) -> (+ mask) -> softmax
    cur, scale, mask = s3, 1.0, None
    while True:
        users = g.users_of(cur)
        soft = [u for u in users if u is not None and _op(g.values[u]) == "relax.nn.softmax"]
        if soft:
            break
        nxt = g.sole_user(cur)
        if nxt is None:
            return None
        value = g.values[nxt]
        op = _op(value)
        if op == "relax.reshape" and _shape(nxt) and _shape(cur) and _eq(_shape(nxt)[-1], _shape(cur)[-1]):
            pass
        elif op in ("relax.multiply", "relax.divide") and mask is None:
            a, b = value.args
            c = _scalar(b)
            if c is None and op == "relax.multiply":
                a, b = b, a
                c = _scalar(b)
            if c is None or c == 0.0 or not a.same_as(cur):
                return None
            scale = scale * c if op == "relax.multiply" else scale / c
        elif op == "relax.add" and mask is None:
            a, b = value.args
            m = b if a.same_as(cur) else a
            if _scalar(m) is not None or _dtype(m) not in (dt, "float32") or _shape(m) is None:
                return None
            ms, ss = _shape(m), _shape(nxt)
            if len(ms) > len(ss) or not _eq(ms[-1], ss[-1]) and not _one(ms[-1]):
                return None
            if not all(_eq(x, y) for x, y in zip(ss, _shape(cur))):
                return None  # the mask must not broadcast the scores themselves
            mask = m
        else:
            return None
        claims.append(nxt)
        cur = nxt
    if len(soft) != 1:
        return None
    p = soft[0]
    sv = g.values[p]
    if int(sv.attrs.axis) not in (-1, len(_shape(cur)) - 1):
        return None
    claims.append(p)
    others = [u for u in g.users_of(cur) if not u.same_as(p)] if all(u is not None for u in g.users_of(cur)) else None
    if others is None:
        return None
    safe = False
    last = p
    if others:
        guard = _safe_softmax_guard(g, cur, p)
        if guard is None:
            return None
        last, chain = guard
        claims.extend(chain + [last])
        safe = True
    # probabilities -> (reshape / same-shape broadcast) -> matmul(., v)
    while True:
        nxt = g.sole_user(last)
        if nxt is None:
            return None
        value = g.values[nxt]
        op = _op(value)
        if op == "relax.matmul":
            break
        if op not in ("relax.reshape", "relax.broadcast_to") or not _eq(_shape(nxt)[-1], _shape(last)[-1]):
            return None
        if op == "relax.broadcast_to" and not all(_eq(a, b) for a, b in zip(_shape(nxt), _shape(last))):
            return None
        claims.append(nxt)
        last = nxt
    o3 = nxt
    pa, va = g.values[o3].args
    if not pa.same_as(last) or _dtype(va) != dt or str(g.values[o3].attrs.out_dtype) not in ("", dt):
        return None
    claims.append(o3)
    # the operands, as views of what they were cut from
    q = _operand(g, qa, True)
    kt = _operand(g, kta, True)
    v = _operand(g, va, False)
    if q is None or kt is None or v is None:
        return None
    (qb, qv, qbatch, qs), (kb, kv, kbatch, ks), (vb, vv, vbatch, _) = q, kt, v
    if not (len(qbatch) == len(kbatch) == len(vbatch) <= 2):
        return None
    if not all(_eq(a, b) and _eq(a, c) for a, b, c in zip(qbatch, kbatch, vbatch)):
        return None
    kv = _View(kv.offset, kv.dims[:-2] + [kv.dims[-1], kv.dims[-2]])  # k^T -> k
    qv, kv, vv = _batch4(qv, qbatch), _batch4(kv, qbatch), _batch4(vv, qbatch)
    if qv is None or kv is None or vv is None:
        return None
    d = qv[1][3]
    if not (_eq(kv[1][3], d) and _eq(vv[1][3], d) and _eq(kv[1][2], vv[1][2])):
        return None  # torch's flash kernel wants one head size for q, k and v
    if mask is not None and len(_shape(mask)) > 2:
        ss = _shape(g.values[p].args[0])  # the masked scores must be split into batch dims as q is
        if len(ss) != len(qbatch) + 2 or not all(_eq(a, b) for a, b in zip(ss, qbatch)):
            return None
    # output: o3 [*batch, L, D] -> view ops -> the tensor its consumer reads, written through a view
    chain = []
    while True:
        nxt = g.sole_user(chain[-1] if chain else o3)
        if nxt is None or nxt in claimed or _dtype(nxt) != dt or _shape(nxt) is None:
            break
        if _op(g.values[nxt]) not in ("relax.reshape", "relax.permute_dims", "relax.broadcast_to", "relax.squeeze", "relax.expand_dims"):
            break
        chain.append(nxt)
    ov = None
    while ov is None:
        head = chain[-1] if chain else o3
        view = _View.dense(_shape(head))
        for var in reversed(chain):
            value = g.values[var]
            view = _backward(view, value, value.args[0]) if view is not None else None
        view = view.reshape(list(qbatch) + list(_shape(o3)[-2:])) if view is not None else None
        ov = _batch4(view, qbatch)
        if ov is None:
            if not chain:
                return None
            chain.pop()  # a view op that cannot be inverted stays in TVM
    claims.extend(chain)
    if any(c in claimed for c in claims):
        return None
    scale = scale * qs * ks
    if isinstance(d, int) and abs(scale * d**0.5 - 1.0) < 1e-6:
        scale = d**-0.5  # SDPA's default, which the decomposition rounded through sqrt(scale) twice
    if isinstance(mask, tvm.ir.expr.Constant):
        mask = relax.const(mask.value.numpy(), _dtype(mask))
    views = []
    for off, sizes, strides in (qv, kv, vv, ov):
        views += [off] + sizes + strides
    args = [qb, kb, vb] + ([mask] if mask is not None else [])
    attrs = [int(mask is not None), int(safe)] + views
    epilogue = ["scale"] + (["mask"] if mask is not None else []) + (["safe_softmax"] if safe else ["softmax"])
    return _Plan(head, FUNCS["attention"], args, attrs, float(scale), _report("attention", head, epilogue, claims), claims)


def _layer_norm(g: _Graph, var, call, dtypes):
    x, gamma, beta = call.args
    a = call.attrs
    dt = _dtype(x)
    shp = _shape(x)
    if dt not in dtypes or shp is None or _dtype(var) != dt:
        return None
    nd = len(shp)
    axes = sorted(_axes(a.axes, nd))
    if not axes or axes != list(range(nd - len(axes), nd)):
        return None  # torch normalizes over trailing dims only
    norm = shp[nd - len(axes) :]
    if not a.center or not a.scale:
        ones = np.ones([int(n) for n in norm], dtype=dt) if all(isinstance(n, int) for n in norm) else None
        if ones is None:
            return None
        gamma = gamma if a.scale else relax.const(ones, dt)
        beta = beta if a.center else relax.const(np.zeros_like(ones), dt)
    for t in (gamma, beta):
        ts = _shape(t)
        if _dtype(t) != dt or ts is None or len(ts) != len(norm) or not all(_eq(p, q) for p, q in zip(ts, norm)):
            return None
    return _Plan(var, FUNCS["layer_norm"], [x, gamma, beta], [len(axes)], float(a.epsilon), _report("layer_norm", var, [], [var]), [var])


def _softmax(g: _Graph, var, call, dtypes):
    x = call.args[0]
    dt = _dtype(x)
    shp = _shape(x)
    if dt not in dtypes or shp is None or _dtype(var) != dt:
        return None
    axis = _axes([call.attrs.axis], len(shp))[0]
    return _Plan(var, FUNCS["softmax"], [x], [axis], None, _report("softmax", var, [], [var]), [var])


# ---- rewrite ------------------------------------------------------------------------------


def _rewriter():
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Rewriter(PyExprMutator):
        def __init__(self, mod, plans):
            super().__init__(mod)
            self.plans = plans

        def visit_var_binding_(self, binding):
            plan = self.plans.get(binding.var)
            if plan is None:
                return super().visit_var_binding_(binding)
            args = [a if isinstance(a, tvm.ir.expr.Constant) else self.visit_expr(a) for a in plan.args]
            args.append(relax.ShapeExpr([tirx.IntImm("int64", x) if isinstance(x, int) else x for x in plan.attrs]))
            if plan.scalar is not None:
                args.append(relax.prim_value(tirx.FloatImm("float64", plan.scalar)))
            call = relax.op.call_dps_packed(plan.func, relax.Tuple(args), out_ty=binding.var.ty)
            self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(call)))

    return Rewriter
