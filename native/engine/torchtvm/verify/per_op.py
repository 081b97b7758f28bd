"""Per-op numeric comparison with PyTorch (`compile --compare-ops`): where, down to the op, a build's
numbers leave PyTorch's.

Both sides run on the verification's random inputs (seed 0):

- PyTorch: the program the import translated (the model as core aten ops, frontend/importer.py) runs
  node by node under torch.fx's interpreter, keeping every node's value.
- The build: the Relax VM's instrument hook copies what each kernel call writes (a fused TVM kernel,
  a library call), in run order; the build's kernel_calls (backend/kernel_calls.py) say which
  Relax var, named after its FX node at import (frontend/provenance.py), each call computes.

Each call is compared with its node's value under verify/compare.py's rule and tolerances (by dtype,
against the reference tensor's own scale; NaN and infinity positions must match). A channels-last
value (the library path runs convolutions in NHWC, backend/layout.py) is compared after moving its
channels back to the model's layout. Each row also carries both tensors' statistics and a histogram
of their absolute difference (tensor_stats), for the graph view's details, and the call's own time
(time_calls: the median of a few runs under a hook that only reads the clock), so that TVM's kernels
have a time as library calls do. Errors propagate: once an op is off, the ops after it see its
error too, so the first failing op in run order is the one to look at.

Only on request: it runs the program once more in PyTorch and the build once under the hook, and
re-derives the build's fusion (a few seconds).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from torchtvm.common.call_timing import time_each_call
from torchtvm.common.specs import random_inputs
from torchtvm.verify.compare import TOLERANCES, _compare_float, json_safe

_NO_NODE = "made by a compiler pass (a layout transform or a reshape): no node of the model computes it"
_INTERMEDIATE = "an intermediate value inside one node's translation: the node's own value is computed later"
_UNNAMED = "no name to map it by (an output nothing reads, such as an LSTM's unused state)"


def node_values(program, inputs: list[torch.Tensor], keep: set[str] | None = None) -> dict[str, Any]:
    """Every call_function node's value (by FX node name) of running the ExportedProgram `program`
    on `inputs` (its user inputs), node by node; only the names in `keep` when given."""
    import torch.fx
    from torch.export.graph_signature import InputKind

    state, consts = program.state_dict, program.constants
    user = iter(inputs)
    args = []
    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            args.append(next(user))
        elif spec.target in state:
            args.append(state[spec.target])
        else:
            args.append(consts[spec.target])
    values: dict[str, Any] = {}

    class Keep(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.op == "call_function" and (keep is None or n.name in keep):
                values[n.name] = out
            return out

    with torch.no_grad():
        Keep(program.graph_module).run(*args)
    return values


def capture(runner, inputs: list[torch.Tensor], calls: list) -> tuple[list[tuple[Any, list[torch.Tensor]]], list[str]]:
    """Run `runner` (backend.executor.TvmRunner) once on `inputs`, copying what each kernel call of
    `calls` (backend.kernel_calls.KernelCall, run order) writes. A call is matched by its symbol and
    its place among that symbol's calls. Returns ([(call, its output tensors)], the kernel symbols
    the VM called that `calls` does not list)."""
    import tvm_ffi

    by_symbol: dict[str, list] = {}
    for c in calls:
        by_symbol.setdefault(c.symbol, []).append(c)
    seen: dict[str, int] = {}
    captured: list[tuple[Any, list[torch.Tensor]]] = []
    extra: list[str] = []
    errors: list[str] = []

    def hook(func, symbol, before, ret, *args):
        if before:
            return 0
        try:
            name = str(symbol)
            queue = by_symbol.get(name)
            k = seen.get(name, 0)
            seen[name] = k + 1
            if queue is None or k >= len(queue):
                # The VM's builtins and its shape functions (symbolic dims) are not the model's kernels.
                if not name.startswith(("vm.builtin.", "shape_func")):
                    extra.append(name)
                return 0
            call = queue[k]
            # Destination-passing style: the outputs are the call's last tensor arguments.
            tensors = [a for a in args if isinstance(a, tvm_ffi.Tensor)]
            n = len(call.outputs)
            outs = tensors[-n:] if n and len(tensors) >= n else []
            captured.append((call, [torch.from_dlpack(t).clone() for t in outs]))
        except Exception as e:  # never break the run: the call is reported as not captured
            errors.append(f"{symbol}: {e}")
        return 0  # VMInstrumentReturnKind.kNoOp: run the call as usual

    tvm_inputs = runner.to_tvm(inputs)
    runner.vm.set_instrument(tvm_ffi.convert(hook))
    try:
        runner.vm["main"](*tvm_inputs)
    finally:
        runner.vm.set_instrument(None)
    return captured, extra + errors


def time_calls(runner, inputs: list[torch.Tensor], repeat: int = 5) -> dict[tuple[str, int], float]:
    """Each kernel call's median time in ms over `repeat` runs, keyed by (symbol, its place among
    that symbol's calls) as `capture` matches them (a hook that only reads the clock: capture's
    copies would be timed otherwise)."""
    runs = time_each_call(runner, inputs, repeat)
    keys = set().union(*runs) if runs else set()
    return {key: statistics.median(r[key] for r in runs if key in r) for key in keys}


def _candidates(a: torch.Tensor, r: torch.Tensor) -> list[tuple[torch.Tensor, str | None]]:
    """`a` as the reference's shape: as it is, or with its channels (last) moved back to dim 1 (a
    channels-last value); a 1-D convolution run as a 2-D one has an extra unit dim."""
    out = []
    for t, layout in ((a, None), (a.movedim(-1, 1), "channels-last") if a.dim() >= 3 else (None, None)):
        if t is None:
            continue
        if list(t.shape) == list(r.shape):
            out.append((t, layout))
        elif t.numel() == r.numel() and [d for d in t.shape if d != 1] == [d for d in r.shape if d != 1]:
            out.append((t.reshape(r.shape), layout))
    return out


def compare_tensor(a: torch.Tensor, r: torch.Tensor) -> dict:
    """One op's output `a` against PyTorch's `r`: verify/compare.py's rule, in the reference's
    layout where `a` is channels-last (the layout giving the smaller error where both fit), with
    the `scale` the tolerance is taken against and both tensors' statistics (tensor_stats)."""
    entry: dict[str, Any] = {"shape": list(r.shape), "dtype": str(r.dtype).replace("torch.", "")}
    if a.dtype != r.dtype:
        return {**entry, "ok": False, "max_abs": None, "max_rel": None, "nan_inf_mismatches": 0, "reason": f"dtype {str(a.dtype).replace('torch.', '')} in the build, {entry['dtype']} in PyTorch"}
    cands = _candidates(a, r)
    if not cands:
        return {**entry, "ok": False, "max_abs": None, "max_rel": None, "nan_inf_mismatches": 0, "reason": f"shape {list(a.shape)} in the build, {list(r.shape)} in PyTorch"}
    best: dict | None = None
    best_t = a
    for t, layout in cands:
        e: dict[str, Any] = {}
        if r.dtype.is_floating_point:
            _compare_float(t, r, e)
            e["nan_inf_mismatches"] = e.pop("nan_mismatches") + e.pop("inf_mismatches")
            e.pop("nonfinite_in_reference", None)
        else:
            mism = int((t != r).sum())
            e = {"max_abs": float((t.long() - r.long()).abs().max()) if r.numel() else 0.0, "max_rel": 0.0 if mism == 0 else 1.0, "nan_inf_mismatches": 0, "ok": mism == 0}
            if mism:
                e["reason"] = f"{mism} value(s) differ"
        if layout:
            e["layout"] = layout
        if best is None or _worse(best, e):
            best, best_t = e, t
    assert best is not None
    return {**entry, **best, **tensor_stats(best_t, r)}


HISTOGRAM_BINS = 16


def _summary(x: torch.Tensor) -> dict[str, Any]:
    """min, max, mean and standard deviation of `x`'s finite values, and how many are not finite."""
    x = x.detach().double().flatten()
    f = x[torch.isfinite(x)]
    out: dict[str, Any] = {"nonfinite": int(x.numel() - f.numel())}
    if not f.numel():
        return {**out, "min": None, "max": None, "mean": None, "std": None}
    return {**out, "min": float(f.min()), "max": float(f.max()), "mean": float(f.mean()), "std": float(f.std(unbiased=False))}


def tensor_stats(a: torch.Tensor, r: torch.Tensor) -> dict[str, Any]:
    """Both tensors' statistics (`stats`: the reference's and the build's min, max, mean, std over
    their finite values) and a histogram of the absolute difference where both are finite
    (`diff_histogram`: HISTOGRAM_BINS equal bins from 0 to `max`, the largest difference), for the
    graph view's details. `a` is already in the reference's shape and layout."""
    a64, r64 = a.detach().double().reshape(r.shape), r.detach().double()
    both = torch.isfinite(a64) & torch.isfinite(r64)
    diff = (a64[both] - r64[both]).abs()
    hi = float(diff.max()) if diff.numel() else 0.0
    if hi > 0:
        counts = [int(c) for c in torch.histc(diff, bins=HISTOGRAM_BINS, min=0.0, max=hi)]
    else:
        counts = [int(diff.numel())] + [0] * (HISTOGRAM_BINS - 1)
    return {
        "stats": {"reference": _summary(r64), "build": _summary(a64)},
        "diff_histogram": {"max": hi, "counts": counts},
    }


def _worse(a: dict, b: dict) -> bool:
    """Whether comparison `a` is worse than `b` (not ok where b is, or a larger error)."""
    if a["ok"] != b["ok"]:
        return not a["ok"]
    return _num(a.get("max_abs")) > _num(b.get("max_abs"))


def _num(x) -> float:
    return math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _kind(node) -> str | None:
    """An FX node's op as a short name: aten.convolution.default -> convolution."""
    if node is None:
        return None
    target = node.target
    name = str(getattr(target, "__name__", None) or target).split(".")[0]
    if name == "getitem" and node.args and hasattr(node.args[0], "target"):
        return _kind(node.args[0])  # an element of a node's tuple: that node's op
    return name


def compare_ops(run, scopes: dict[str, str] | None = None, reference=None) -> dict:
    """The per-op comparison of `run`'s build (a pipeline Run whose `built` is a whole compiled
    module) with PyTorch. `scopes`: graph node id -> submodule path (pipeline/compile.py);
    `reference`: the import (frontend.importer.Imported) whose program and names to compare with,
    when `run.imported` holds no program (one kept in a tuning work dir). JSON-safe."""
    built = run.built
    imported = reference or run.imported
    scopes = scopes or {}
    sources = dict(getattr(run.imported, "sources", None) or {})
    names = dict(getattr(imported, "outputs", None) or {})
    inputs = random_inputs(run.specs)
    calls = built.kernel_calls(run.target())
    wanted = {v[0] for v in names.values()}
    values = node_values(imported.program, inputs, keep=wanted)
    fx_nodes = {n.name: n for n in imported.program.graph.nodes}
    captured, extra = capture(built.instrumented_runner, inputs, calls)
    times = time_calls(built.instrumented_runner, inputs)
    place: dict[int, tuple[str, int]] = {}
    counts: dict[str, int] = {}
    for c in calls:
        place[id(c)] = (c.symbol, counts.get(c.symbol, 0))
        counts[c.symbol] = counts.get(c.symbol, 0) + 1
    library = {o.name: o for o in getattr(built, "offloads", [])}
    placement_ops = {o.get("name"): o for o in (run.result.get("placement") or {}).get("ops", [])}

    ops: list[dict] = []
    unmapped: list[dict] = []
    layouts = 0
    for call, tensors in captured:
        # A call's time goes on the first of its rows (a call with several outputs is timed once).
        call_ms = times.get(place[id(call)])
        for var, t in zip(call.outputs, tensors):
            where = {"kernel": call.symbol, "where": call.where}
            name = names.get(var)
            if name is None:
                node = sources.get(var)
                unmapped.append({**where, "value": var or None, "reason": _INTERMEDIATE if node else _NO_NODE if var else _UNNAMED})
                continue
            ref = values.get(name[0])
            if name[1] >= 0 and isinstance(ref, (tuple, list)) and name[1] < len(ref):
                ref = ref[name[1]]
            if not isinstance(ref, torch.Tensor):
                unmapped.append({**where, "value": var, "reason": f"PyTorch's node {name[0]} gives no tensor here"})
                continue
            # A placed op names its graph nodes as the placement report does (the root op, and the
            # nodes fused into its call); a TVM kernel, its output's node and those fused into it.
            placed = library.get(var)
            report = placement_ops.get(var, {}) if placed is not None else {}
            node = report.get("node") or sources.get(var)
            fused = report.get("fused") or [s for s in dict.fromkeys(sources.get(n) for n in call.inner) if s and s != node]
            scope = report.get("scope") or next((scopes[n] for n in [node, *fused] if n in scopes), None)
            row: dict[str, Any] = {
                "op": var,
                "kind": placed.kind if placed is not None else (_kind(fx_nodes.get(name[0])) or call.symbol),
                **({"node": node} if node else {}),
                **({"scope": scope} if scope else {}),
                **where,
                **({"fused": fused} if fused else {}),
            }
            row.update(compare_tensor(t, ref))
            if call_ms is not None:
                row["ms"] = call_ms
                call_ms = None
            layouts += "layout" in row
            ops.append(row)

    first = next((o["op"] for o in ops if not o["ok"]), None)
    dtypes = sorted({o["dtype"] for o in ops if o["dtype"] in {str(k).replace("torch.", "") for k in TOLERANCES}})
    tolerance = {
        "rule": "max abs error <= atol + rtol x the largest finite magnitude of PyTorch's tensor; NaN and infinity positions must match",
        "by_dtype": {str(k).replace("torch.", ""): {"atol": v[0], "rtol": v[1]} for k, v in TOLERANCES.items() if str(k).replace("torch.", "") in dtypes},
    }
    note = (
        f"Each kernel call of the build against PyTorch's value for the same node, on the verification's random inputs (seed 0): "
        f"{len(ops)} compared, {len(unmapped)} not mapped to a node of the model"
        + (f" (calls the build made that its IR does not list: {', '.join(sorted(set(extra)))})" if extra else "")
        + "."
        + (f" {layouts} channels-last output(s) compared after moving the channels back to the model's layout." if layouts else "")
        + (f" First op past the tolerance: {first}; the ops after it see its error too." if first else " Every op is within tolerance.")
    )
    return json_safe({
        "ops": ops,
        "first_failing": first,
        "tolerance": tolerance,
        "unmapped": unmapped,
        "inputs": [list(t.shape) for t in inputs],
        "note": note,
    })
