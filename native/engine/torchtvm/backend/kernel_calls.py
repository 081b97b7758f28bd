"""Which value of the model each call of a built module computes: the kernel calls the Relax VM makes
(TVM's fused kernels, library calls), in run order, each with the names of the Relax vars it
produces as the importer named them (after FX nodes, frontend/provenance.py).

A library call keeps its var's name through the build (it replaces its chain's head binding). A
TVM kernel does not: FuseOps binds each fused call to a fresh var and names its output inside the
fused function `gv`. Its name is recovered from the module just before fusion: the fused output's
binding there is the one calling the same PrimFunc on the same arguments (FuseOps names a fused
function's parameters after the vars the caller passes, and keeps the names of the bindings it
moves inside).

This runs the passes of `build.legalize` up to FuseOps again on the placed module (a few seconds),
only when asked (per-op comparison, verify/per_op.py); the build itself is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torchtvm.backend import nan_semantics, vector_math
from torchtvm.backend.build import TargetInfo
from torchtvm.backend.relax_ir import var_name


@dataclass
class KernelCall:
    symbol: str  # what the VM calls: a PrimFunc (TVM's kernel) or a runtime function (torchtvm.conv2d)
    where: str  # "library" or "tvm"
    # The Relax var names of the values it writes (one per output, in order), as imported; "" where
    # a value has no name the import gave (a layout transform a pass added).
    outputs: list[str] = field(default_factory=list)
    # The names of the bindings fused into the kernel besides its outputs (TVM kernels).
    inner: list[str] = field(default_factory=list)


_CONST = ("const",)


def fusion_stages(placed, info: TargetInfo):
    """The placed module just before and just after FuseOps, by the same passes as build.legalize."""
    import tvm
    from tvm import relax

    nan_semantics.install()
    vector_math.install()
    with info.target:  # type: ignore[attr-defined]  # a tvm Target (TargetInfo.target is typed object)
        mod = relax.transform.DecomposeOpsForInference()(placed)
        mod = relax.transform.CanonicalizeBindings()(mod)
        pre = tvm.transform.Sequential([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant()])(mod)
        fused = relax.transform.FuseOps()(pre)
    return pre, fused


def kernel_calls(placed, info: TargetInfo) -> list[KernelCall]:
    """The kernel calls of the module built from `placed` (build.compile_placed), in run order."""
    pre, fused = fusion_stages(placed, info)
    return calls_of(pre, fused)


def calls_of(pre, fused) -> list[KernelCall]:
    """`kernel_calls` from the two stages of `fusion_stages`."""
    from tvm import relax

    index: dict[tuple, list[str]] = {}
    for b in _bindings(pre["main"]):
        key = _call_tir_key(b.value, lambda v: ("var", var_name(v)))
        if key is not None:
            index.setdefault(key, []).append(var_name(b.var))

    main = _bindings(fused["main"])
    # A call with several outputs (an LSTM's sequence and states) binds a tuple; its elements are
    # named by the bindings that take them apart.
    items = {(var_name(b.value.tuple_value), int(b.value.index)): var_name(b.var) for b in main if isinstance(b.value, relax.TupleGetItem) and isinstance(b.value.tuple_value, relax.Var)}

    def named(var) -> list[str]:
        fields = getattr(getattr(var, "ty", None), "fields", None)
        if fields is None:
            return [var_name(var)]
        return [items.get((var_name(var), i), "") for i in range(len(fields))]

    out: list[KernelCall] = []
    for b in main:
        v = b.value
        if not isinstance(v, relax.Call):
            continue
        op = getattr(v.op, "name", None)
        if op == "relax.call_dps_packed":
            out.append(KernelCall(str(getattr(v.args[0], "global_symbol", "")), "library", named(b.var)))
        elif op == "relax.call_tir":
            out.append(KernelCall(v.args[0].name_hint, "tvm", named(b.var)))
        elif isinstance(v.op, relax.GlobalVar) and isinstance(fused[v.op], relax.Function):
            out.append(_fused_call(v, fused[v.op], index))
    return out


def _bindings(func) -> list:
    from tvm import relax

    return [b for block in func.body.blocks for b in block.bindings if isinstance(b, relax.VarBinding)]


def _call_tir_key(value, name_of) -> tuple | None:
    """A call_tir as (PrimFunc, its arguments by name, constants as one mark), or None."""
    from tvm import relax

    if not (isinstance(value, relax.Call) and getattr(value.op, "name", None) == "relax.call_tir"):
        return None
    args = value.args[1]
    fields = list(args.fields) if isinstance(args, relax.Tuple) else [args]
    return (value.args[0].name_hint, tuple(name_of(a) if isinstance(a, relax.Var) else _CONST for a in fields))


def _fused_call(call, func, index: dict) -> KernelCall:
    """A call of a fused function: its outputs under their names from before fusion."""
    from tvm import relax
    from tvm.ir.expr import Constant  # relax constants live in tvm.ir since 0.27

    # A parameter stands for the caller's argument: a constant, or the var it was named after.
    params = {p: (_CONST if isinstance(a, Constant) else ("var", var_name(p))) for p, a in zip(func.params, call.args)}
    bindings = _bindings(func)
    values = {b.var: b.value for b in bindings}
    names: dict = {}
    body = func.body.body
    results = list(body.fields) if isinstance(body, relax.Tuple) else [body]

    def name_of(v) -> tuple:
        if v in params:
            return params[v]
        if v not in names:
            key = _call_tir_key(values.get(v), name_of)
            # Bindings of one name, PrimFunc and arguments are taken in order (names repeat only
            # where a pass named several bindings alike).
            found = index.get(key) if key is not None else None
            # An output not found has no name (FuseOps called it gv); an inner binding keeps its own.
            names[v] = ("var", found.pop(0) if found else ("" if any(v.same_as(r) for r in results) else var_name(v)))
        return names[v]

    outputs = [_name(name_of(r)) if isinstance(r, relax.Var) else "" for r in results]
    inner = [n for n in (_name(name_of(b.var)) for b in bindings if b.var not in results) if n]
    return KernelCall(call.op.name_hint, "tvm", outputs, inner)


def _name(key: tuple) -> str:
    return key[1] if key[0] == "var" else ""
