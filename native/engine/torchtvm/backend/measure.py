"""Per-operator placement, measured: each op the library could take is timed both ways (the library
kernel, and TVM's kernel with the tuning database's schedule) in the layout the model runs it in,
and goes where it is faster. A library call with more than one algorithm (a convolution as
Winograd, as the runtime's depthwise loop or small GEMM, as oneDNN's direct convolution, or as
ATen's own convolution; an LSTM / GRU as the runtime's recurrence or torch's kernel; an attention
as torch's flash attention or the runtime's own; a squeeze-excite block as the runtime's fused loops
or ATen's ops) is timed every way (time_library_calls, untuned builds too) and uses the fastest; a
squeeze-excite block is also timed as TVM's own fused kernel (time_tvm_kernels).

For TVM's kernels, every candidate is a function of one module, built and exported once and
loaded like the model (TVM's loops on torch's thread pool), then timed in interleaved rounds so
that a burst of load hits both candidates of an op alike. (Timed alone, an op misses the cache
state its neighbours leave; the model-level comparison in pipeline.py catches a placement that
loses in context.)
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field, replace

from torchtvm.backend import build as builder
from torchtvm.backend import library
from torchtvm.backend.executor import TvmRunner

# An alternative to the untuned default (TVM's kernel, or Winograd in place of the direct
# convolution) takes an op only when clearly faster: a tie keeps the default.
MARGIN = 0.95


@dataclass
class OpTiming:
    name: str
    library_ms: float  # the library call as the default build makes it
    tvm_ms: float | None  # None where TVM's kernel was not timed (an untuned build)
    winograd_ms: float | None = None  # the library call with the Winograd kernel, where it applies
    # Other algorithms of the library call: "onednn" (a convolution without the runtime's own
    # depthwise loop or small-GEMM path), "torch" (a convolution by ATen's own convolution, an LSTM /
    # GRU by torch's kernel, a squeeze-excite block by ATen's ops), "packed" (a linear or 1x1
    # convolution by MKL's packed GEMM), "small_gemm" (the same by the runtime's own register-blocked
    # GEMM, small_gemm.cc), "direct" (a convolution with few values per output pixel by the runtime's
    # own direct loop, library_direct_conv.cc), "own" (an attention by the runtime's own kernel in
    # place of torch's flash attention), "separate" (a depthwise + 1x1 convolution pair run as one
    # call, library_ms: the two calls it replaces).
    others_ms: dict[str, float] = field(default_factory=dict)
    # The call's time inside the built model's runs, per algorithm ("library": the default), where
    # placement timed it there too (placement.py, check_in_context): alone, its weights stay in
    # cache; in a model whose weights do not fit, they come from memory, and that can reorder them.
    context_ms: dict[str, float] = field(default_factory=dict)

    @property
    def alone_times(self) -> dict[str, float]:
        """The library call's times alone by algorithm ("library": the default)."""
        times = {"library": self.library_ms, **self.others_ms, **({"winograd": self.winograd_ms} if self.winograd_ms is not None else {})}
        return {k: v for k, v in times.items() if v is not None}

    @property
    def alone_algorithm(self) -> str:
        """The library algorithm that timed clearly fastest alone; "" for the default."""
        times = {k: v for k, v in self.alone_times.items() if k != "library"}
        best = min(times, key=lambda k: times[k], default=None)
        return best if best is not None and times[best] < self.library_ms * MARGIN else ""

    @property
    def algorithm(self) -> str:
        """The algorithm the build uses: the one fastest alone, unless another timed clearly faster
        than it inside the model; "" for the default."""
        alone = self.alone_algorithm
        mine = self.context_ms.get(alone or "library")
        if mine is not None and len(self.context_ms) > 1:
            best = min(self.context_ms, key=lambda k: self.context_ms[k])
            if self.context_ms[best] < mine * MARGIN:
                return "" if best == "library" else best
        return alone

    @property
    def winograd(self) -> bool:
        return self.algorithm == "winograd"

    @property
    def best_library_ms(self) -> float:
        return self.alone_times[self.algorithm or "library"]

    @property
    def where(self) -> str:
        return "tvm" if self.tvm_ms is not None and self.tvm_ms < self.best_library_ms * MARGIN else "library"


def _variants(o, call) -> dict[str, tuple]:
    """The attribute tuples to time `o`'s call with: its default and each algorithm it can take."""
    inputs, attrs, _ = library.split_call_args(call)
    base = tuple(int(x) for x in attrs.values)
    out = {"library": base}
    if o.func == "torchtvm.conv2d":
        if o.winograd_ok:
            out["winograd"] = base + (library.ALGORITHM_CODES[o.func]["winograd"],)
        w = library.static_shape(inputs[1])
        # The runtime's own paths (library_kernels.cc Conv2d): a depthwise loop (groups > 1) and a
        # GEMM for small 1x1 convolutions; elsewhere the default already is oneDNN.
        if str(inputs[0].ty.dtype) == "float32" and w is not None and (base[6] > 1 or w[2:] == [1, 1]):
            out["onednn"] = base + (library.ALGORITHM_CODES[o.func]["onednn"],)
        # ATen's own convolution (what TorchScript as loaded runs): on small images its per-call
        # cost is a fraction of oneDNN's prepacked form.
        if str(inputs[0].ty.dtype) == "float32":
            out["torch"] = base + (library.ALGORITHM_CODES[o.func]["torch"],)
        # Few values per output pixel (an image net's stem: 3 channels x 3x3): the runtime's direct loop.
        if str(inputs[0].ty.dtype) == "float32" and w is not None and w[2:] != [1, 1] and library.direct_takes(w, base[6]) and library.constant_value(inputs[1]) is not None:
            out["direct"] = base + (library.ALGORITHM_CODES[o.func]["direct"],)
        # A 1x1 convolution (stride 1, no padding, one group) is a GEMM: MKL's packed one too.
        if str(inputs[0].ty.dtype) == "float32" and w is not None and w[2:] == [1, 1] and base[:4] == (1, 1, 0, 0) and base[6] == 1 and library.constant_value(inputs[1]) is not None:
            out["packed"] = base + (library.ALGORITHM_CODES[o.func]["packed"],)
            out["small_gemm"] = base + (library.ALGORITHM_CODES[o.func]["small_gemm"],)
    elif o.func in ("torchtvm.lstm", "torchtvm.gru", "torchtvm.squeeze_excite"):
        out["torch"] = base + (library.ALGORITHM_CODES[o.func]["torch"],)
    elif o.func == "torchtvm.attention" and str(inputs[0].ty.dtype) == "float32":
        out["own"] = base + (library.ALGORITHM_CODES[o.func]["own"],)
    elif o.func == "torchtvm.linear" and str(inputs[0].ty.dtype) == "float32" and library.constant_value(inputs[1]) is not None:
        # MKL's packed GEMM needs the weight packed once: a constant's
        out["packed"] = base + (library.ALGORITHM_CODES[o.func]["packed"],)
        out["small_gemm"] = base + (library.ALGORITHM_CODES[o.func]["small_gemm"],)
    return out


def time_library_calls(placed, offloads: list, rounds: int = 5, calls: int = 4, cache=None, budget_s: float = 60.0) -> dict[str, OpTiming]:
    """For an untuned build: each static-shaped library call of `placed` (a module offload placed)
    that has another algorithm (Winograd, oneDNN's direct convolution or ATen's own for a
    convolution, torch's kernel for an LSTM / GRU recurrence, MKL's packed GEMM), timed in
    this process every way, on the model's weights and random activations, in interleaved rounds.
    Only the kernels run (no TVM build): about a second for ResNet-18. Times found in `cache`
    (kernel_choices.TimingCache) are not measured again; `budget_s` bounds the timing (calls left
    when it runs out keep their default)."""
    import time

    import torch
    import tvm_ffi

    from torchtvm.backend import kernel_choices

    found = {name: call for f in library.ALGORITHM_CODES for name, call in library.library_calls(placed, f).items()}
    machine = kernel_choices.machine() if cache is not None else {}
    cases: dict[str, tuple] = {}
    known: dict[str, dict[str, float]] = {}
    for o in offloads:
        call = found.get(o.name)
        if call is None or o.func not in library.ALGORITHM_CODES:
            continue
        inputs, attrs, scalars = library.split_call_args(call)
        if not all(hasattr(x, "value") for x in attrs.values):
            continue  # symbolic attributes (an attention's views over a symbolic batch)
        variants = _variants(o, call)
        if len(variants) < 2:
            continue
        maybe_shapes = [library.static_shape(a) for a in inputs]
        out_types = list(call.ty.fields) if hasattr(call.ty, "fields") else [call.ty]
        out_shapes = [[int(d.value) for d in t.shape.values] if all(hasattr(d, "value") for d in t.shape.values) else None for t in out_types]
        if any(s is None for s in maybe_shapes + out_shapes):
            continue  # a symbolic shape: no size to time it at
        signature = {"func": o.func, "variants": {k: list(v) for k, v in variants.items()}, "inputs": [[s, str(a.ty.dtype)] for s, a in zip(maybe_shapes, inputs)], "outputs": out_shapes}
        k = kernel_choices.key(signature, machine) if cache is not None else ""
        hit = cache.get(k) if cache is not None else None
        if hit is not None and set(hit) == set(variants):
            known[o.name] = hit
            continue
        # the weights and biases (constants); activations and states are random
        args = [library.constant_value(a) if library.constant_value(a) is not None else torch.randn(s or []).to(getattr(torch, str(a.ty.dtype))) for a, s in zip(inputs, maybe_shapes)]
        outs = [torch.empty(s or [], dtype=getattr(torch, str(t.dtype))) for s, t in zip(out_shapes, out_types)]
        # an attention's scale comes before its output
        tail: list = [float(getattr(x.value, "value", x.value)) for x in scalars] + outs
        func = tvm_ffi.get_global_func(o.func)
        cases[o.name] = (func, args, tail, {name: tvm_ffi.Shape(v) for name, v in variants.items()}, k)  # type: ignore[misc]
    times: dict[tuple, list[float]] = {}
    for func, args, outs, variants, _ in cases.values():
        for a in variants.values():
            func(*args, a, *outs)  # the first call packs or transforms the weight
    deadline = time.perf_counter() + budget_s
    for r in range(rounds):
        if r > 0 and time.perf_counter() > deadline:
            break
        for name, (func, args, outs, variants, _) in cases.items():
            for kind, a in variants.items():
                for _ in range(calls):
                    t0 = time.perf_counter()
                    func(*args, a, *outs)
                    times.setdefault((name, kind), []).append((time.perf_counter() - t0) * 1e3)
    # The weights packed here are this module's constants, not the built model's copies.
    tvm_ffi.get_global_func("torchtvm.library_clear_caches")()
    result: dict[str, dict[str, float]] = dict(known)
    for name, (_, _, _, variants, k) in cases.items():
        # A low quantile: on a busy machine the median measures the load (see _time).
        low = {kind: (statistics.quantiles(v, n=10)[0] if len(v) >= 10 else min(v)) for kind in variants if (v := times.get((name, kind)))}
        if set(low) == set(variants):
            result[name] = low
            if cache is not None:
                cache.put(k, low)
    return {name: _timing(name, t) for name, t in result.items()}


def time_tvm_kernels(prepared, info, dtypes: set[str], kinds: tuple, cache=None, rounds: int = 3, calls: int = 10) -> dict[str, float]:
    """For an untuned build: each static-shaped chain of `kinds` in `prepared` (a module after
    library.prepare) as TVM's own fused kernel with its default schedule, timed alone as
    time_functions times it (the library call's algorithms are time_library_calls' to time).
    Times in `cache` are reused, keyed by the chain's function and the machine. Returns {op name:
    ms}."""
    import tvm_ffi

    from torchtvm.backend import kernel_choices

    ops = library.isolate(prepared, dtypes, kinds)
    machine = kernel_choices.machine() if cache is not None else {}
    out: dict[str, float] = {}
    funcs, keys = {}, {}
    for i, (op, func) in enumerate(ops):
        k = kernel_choices.key({"tvm_default": str(tvm_ffi.structural_hash(func))}, machine) if cache is not None else ""
        hit = cache.get(k) if k else None
        if hit is not None and "tvm" in hit:
            out[op.name] = hit["tvm"]
            continue
        funcs[f"tvm_{i}"], keys[f"tvm_{i}"] = func, (op.name, k)
    for fname, ms in time_functions(funcs, info, None, rounds, calls).items():
        name, k = keys[fname]
        out[name] = ms
        if k:
            cache.put(k, {"tvm": ms})
    return out


def time_depthwise_pointwise(pairs: list, info, cache=None, rounds: int = 3, calls: int = 10) -> dict[str, dict[str, float]]:
    """Each depthwise -> 1x1 convolution pair (depthwise_pointwise.pairs) timed as the two library
    calls placement chose and as the one fused call, alone, on the model's weights. Times in
    `cache` are reused. Returns {pointwise op name: {"two": ms, "fused": ms}}."""
    from torchtvm.backend import depthwise_pointwise, kernel_choices

    machine = kernel_choices.machine() if cache is not None else {}
    out: dict[str, dict[str, float]] = {}
    funcs, keys = {}, {}
    for i, pair in enumerate(pairs):
        k = kernel_choices.key(depthwise_pointwise.signature(pair), machine) if cache is not None else ""
        hit = cache.get(k) if k else None
        if hit is not None and set(hit) == {"two", "fused"}:
            out[pair.pointwise] = hit
            continue
        for kind, func in depthwise_pointwise.timing_functions(pair).items():
            funcs[f"{kind}_{i}"] = func
        keys[i] = (pair.pointwise, k)
    times = time_functions(funcs, info, None, rounds, calls)
    for i, (name, k) in keys.items():
        t = {"two": times[f"two_{i}"], "fused": times[f"fused_{i}"]}
        out[name] = t
        if k:
            cache.put(k, t)
    return out


def _timing(name: str, t: dict[str, float]) -> OpTiming:
    return OpTiming(name, t["library"], None, t.get("winograd"), {k: v for k, v in t.items() if k not in ("library", "winograd")})


def measure_ops(prepared, info, database, dtypes: set[str], rounds: int = 3, calls: int = 10) -> dict[str, OpTiming]:
    """Times every static-shaped library candidate of `prepared` (a module after
    library.prepare) as a library call and as TVM's kernel. Returns {op name: OpTiming}; Winograd's
    times (time_library_calls) are the caller's to add."""

    ops = library.isolate(prepared, dtypes)
    times = _time(ops, info, database, dtypes, ("tvm", "lib"), rounds, calls)
    return {op.name: OpTiming(op.name, times[f"lib_{i}"], times[f"tvm_{i}"]) for i, (op, _) in enumerate(ops)}


def task_library_ms(prepared, info, dtypes: set[str], task_hashes: list[str]) -> dict[int, float]:
    """What the tuner weighs a task against: for each tuning task (by structural hash) that is
    exactly one library candidate's kernel, that op's library call timed alone. A tuned record
    for such a task only matters if it comes near that time."""
    import tvm
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    ops = library.isolate(prepared, dtypes)
    index = {h: i for i, h in enumerate(task_hashes)}
    task_of_op = {}
    for k, (_, func) in enumerate(ops):
        tasks = list(ms.relax_integration.extract_tasks(builder.legalize(tvm.IRModule({"main": func}), info), info.target))
        if len(tasks) == 1 and str(tvm_ffi.structural_hash(tasks[0].dispatched[0])) in index:
            task_of_op[k] = index[str(tvm_ffi.structural_hash(tasks[0].dispatched[0]))]
    if not task_of_op:
        return {}
    times = _time([ops[k] for k in task_of_op], info, None, dtypes, ("lib",), rounds=2, calls=10)
    out: dict[int, float] = {}
    for j, task in enumerate(task_of_op.values()):
        out[task] = min(out.get(task, float("inf")), times[f"lib_{j}"])
    return out


def _time(ops: list, info, database, dtypes: set[str], kinds: tuple, rounds: int, calls: int) -> dict[str, float]:
    """Builds `kinds` of each op ("tvm": its own bindings, "lib": offloaded) into one module,
    exports and loads it like a model, and returns each function's low-quantile time in ms."""
    import tvm
    from tvm.relax.utils import copy_with_new_vars

    funcs = {}
    for i, (op, func) in enumerate(ops):
        if "tvm" in kinds:
            funcs[f"tvm_{i}"] = copy_with_new_vars(func)
        if "lib" in kinds:
            offloaded, _ = library.offload(tvm.IRModule({"main": copy_with_new_vars(func)}), dtypes)
            funcs[f"lib_{i}"] = offloaded["main"]
    return time_functions(funcs, info, database, rounds, calls)


def time_functions(funcs: dict, info, database, rounds: int, calls: int) -> dict[str, float]:
    """Builds the relax functions `funcs` ({name: function}) into one module (TVM's kernels with the
    database's schedules where it has them), exports and loads it like a model, times each in
    interleaved rounds and returns {name: low-quantile ms}."""
    import tvm

    if not funcs:
        return {}
    mod = tvm.IRModule()
    for name, func in funcs.items():
        mod[name] = func.with_attr("global_symbol", name)
    executable = tvm.compile(builder.lower(mod, info, database), target=info.target)
    with tempfile.TemporaryDirectory(prefix="torchtvm-ops-") as tmp:
        runner = TvmRunner.from_library(builder.export_library(executable, os.path.join(tmp, "ops.so")))
    times: dict[str, list[float]] = {}
    args = {name: runner.to_tvm([_sample(p) for p in func.params]) for name, func in funcs.items()}
    # One call per sample: TVM's evaluator with number > 1 reported library calls many times
    # slower than one call at a time does (seen here; the model's own timing uses number=1 too).
    for _ in range(rounds):
        for name in funcs:
            f = runner.vm.time_evaluator(name, runner.dev, number=1, repeat=calls, min_repeat_ms=0)
            times.setdefault(name, []).extend(r * 1e3 for r in f(*args[name]).results)
    # A low quantile, not the median: on a busy machine a parallel region can wait a whole
    # scheduler slice for a descheduled thread (library calls then read 8 or 16 ms), and what is
    # compared here is the kernels, not the load.
    return {k: statistics.quantiles(v, n=10)[0] if len(v) >= 10 else min(v) for k, v in times.items()}


def time_aten_ops(placed, info, database, cache=None, rounds: int = 3, calls: int = 10) -> dict[str, OpTiming]:
    """Each op of `placed` that PyTorch's kernel can run (library_aten.aten_calls), timed as TVM's
    kernel (with the database's schedule, or the default one) and as the ATen call, alone, on its
    model's shapes and weights. Times in `cache` are reused (keyed by the op, its shapes and the
    machine). Returns {op name: OpTiming} (library_ms: the ATen call)."""
    from torchtvm.backend import kernel_choices, library_aten

    calls_found = library_aten.aten_calls(placed)
    machine = kernel_choices.machine() if cache is not None else {}
    known: dict[str, dict[str, float]] = {}
    funcs, keys = {}, {}
    # Ops with the same signature (a transformer's repeated blocks) are built and timed once.
    first: dict[str, int] = {}
    same_as: dict[int, int] = {}
    for i, c in enumerate(calls_found):
        signature = {
            "aten": c.op,
            "template": c.template,
            "own": list(c.own or []),
            "epilogue": [str(v.op.name) for _, v in c.epilogue],
            "tvm": str(c.expr.attrs),
            "inputs": [[library_aten.shape_json_of(a.ty), str(a.ty.dtype)] for a in c.expr.args if hasattr(a.ty, "shape")],
            "tuned": database is not None,
        }
        text = json.dumps(signature, sort_keys=True)
        if text in first:
            same_as[i] = first[text]
            continue
        first[text] = i
        k = kernel_choices.key(signature, machine) if cache is not None and database is None else ""
        hit = cache.get(k) if k else None
        if hit is not None and set(hit) == {"library", "tvm"} | ({"own"} if c.own else set()):
            known[c.name] = hit
            continue
        funcs[f"tvm_{i}"] = library_aten.standalone(c, as_aten=False)
        funcs[f"aten_{i}"] = library_aten.standalone(c, as_aten=True)
        if c.own:  # the runtime's own kernel for the op, a third candidate
            funcs[f"own_{i}"] = library_aten.standalone(c, as_aten=True, own=True)
        keys[i] = k
    try:
        times = time_functions(funcs, info, database, rounds, calls)
    except Exception:
        # TVM cannot build some op's kernel (a conv2d_transpose moved to NHWC has no legalization):
        # time what builds, one TVM kernel at a time; an op whose kernel does not build has
        # PyTorch's as its only candidate (tvm_ms None).
        times = time_functions({n: f for n, f in funcs.items() if not n.startswith("tvm_")}, info, database, rounds, calls)
        for n, f in funcs.items():
            if n.startswith("tvm_"):
                try:
                    times.update(time_functions({n: f}, info, database, rounds, calls))
                except Exception:
                    pass
    out = {name: OpTiming(name, t["library"], t["tvm"], others_ms={"own": t["own"]} if "own" in t else {}) for name, t in known.items()}
    for i, k in keys.items():
        aten_ms, tvm_ms, own_ms = times[f"aten_{i}"], times.get(f"tvm_{i}"), times.get(f"own_{i}")
        out[calls_found[i].name] = OpTiming(calls_found[i].name, aten_ms, tvm_ms, others_ms={"own": own_ms} if own_ms is not None else {})
        if k and tvm_ms is not None:
            cache.put(k, {"library": aten_ms, "tvm": tvm_ms, **({"own": own_ms} if own_ms is not None else {})})
    for i, j in same_as.items():
        name, twin = calls_found[i].name, calls_found[j].name
        if twin in out:
            out[name] = replace(out[twin], name=name)
    return out


def _sample(param):
    import torch

    shape = [int(d) for d in param.ty.shape.values]
    dtype = getattr(torch, str(param.ty.dtype))
    return torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
