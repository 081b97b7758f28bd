"""What both kinds of fallback share: the TorchScript graph surgery (inserting a call to a compiled
module), fresh copies, the captured inputs a compiled part is specified and checked with, compiling
one part through the ordinary import/build path, and the partitioned result."""

from __future__ import annotations

import io
import statistics
import time
import warnings
from dataclasses import dataclass, field

import torch

from torchtvm.backend import build as builder
from torchtvm.common.errors import EngineError
from torchtvm.common.specs import DEFAULT_SYM_MAX, TORCH_TO_NAME, InputSpec, SymDim
from torchtvm.deploy import export
from torchtvm.frontend.importer import import_torchscript
from torchtvm.verify.compare import compare
from torchtvm.verify.reference import run_reference

TENSOR = torch._C.TensorType.get()
TENSOR_LIST = torch._C.ListType(TENSOR)


def insert_forward_call(graph, self_v, attr: str, cls_type, inputs: list, before):
    """Before `before`, emit `self.<attr>.forward([inputs])` (a compiled module held as an
    attribute of type `cls_type`); returns the GetAttr, ListConstruct and CallMethod nodes."""
    get = graph.create("prim::GetAttr", [self_v])
    get.s_("name", attr)
    get.output().setType(cls_type)
    get.insertBefore(before)
    lst = graph.create("prim::ListConstruct", inputs)
    lst.output().setType(TENSOR_LIST)
    lst.insertBefore(before)
    call = graph.create("prim::CallMethod", [get.output(), lst.output()])
    call.s_("name", "forward")
    call.output().setType(TENSOR_LIST)
    call.insertBefore(before)
    return get, lst, call


CAPTURE_LIST = torch._C.ListType(TENSOR_LIST)
# Captured calls a compiled part is checked on (spread over all captures).
CHECKS_PER_CHILD = 6


def fresh_copy(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """An independent copy (its own types and graphs) through save/load."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, buf)
        buf.seek(0)
        m = torch.jit.load(buf, map_location="cpu")
    m.eval()
    return m


def walk(block):
    for n in block.nodes():
        yield n
        for b in n.blocks():
            yield from walk(b)


@dataclass
class Capture:
    run: int  # index of the shape set the model ran with
    tensors: list[torch.Tensor]


def derive_specs(path: str, captures: list[Capture], run_symbols: list[dict[str, int]], user_syms: dict[str, SymDim]) -> list[InputSpec]:
    """Input specs for a child from the tensors it was called with."""
    first = captures[0].tensors
    specs = []
    fresh: dict[tuple, SymDim] = {}
    for i, t0 in enumerate(first):
        name = f"input{i}"
        if any(c.tensors[i].dim() != t0.dim() for c in captures):
            raise EngineError("fallback_shapes", f"{path} is called with a different number of dimensions for input {i + 1} from call to call.")
        if any(c.tensors[i].dtype != t0.dtype for c in captures):
            raise EngineError("fallback_shapes", f"{path} is called with different dtypes for input {i + 1} from call to call.")
        if t0.dtype not in TORCH_TO_NAME:
            raise EngineError("fallback_shapes", f"{path} takes a {str(t0.dtype).replace('torch.', '')} tensor, which the compiler does not support.")
        dims: list[int | SymDim] = []
        for j in range(t0.dim()):
            values = tuple(int(c.tensors[i].shape[j]) for c in captures)
            if len(set(values)) == 1:
                dims.append(values[0])
                continue
            sym = None
            for sname, sd in user_syms.items():
                if all(run_symbols[c.run].get(sname) == v for c, v in zip(captures, values)):
                    sym = sd
                    break
            if sym is None:
                if values not in fresh:
                    base = "".join(ch if ch.isalnum() else "_" for ch in path)
                    fresh[values] = SymDim(f"{base}_d{len(fresh)}", 1, max(DEFAULT_SYM_MAX, max(values)))
                sym = fresh[values]
            dims.append(sym)
        rng = None
        if not t0.dtype.is_floating_point and t0.dtype != torch.bool:
            lo = min(int(c.tensors[i].min()) for c in captures if c.tensors[i].numel())
            hi = max(int(c.tensors[i].max()) for c in captures if c.tensors[i].numel())
            rng = (lo, hi + 1)
        specs.append(InputSpec(name, tuple(dims), TORCH_TO_NAME[t0.dtype], rng))
    return specs


# -- 3. compile a child ---------------------------------------------------------------------------


@dataclass
class Compiled:
    site_path: str
    runtime_object: torch.ScriptObject  # a torch.classes.torchtvm.Module
    specs: list[InputSpec]
    num_outputs: int
    check: dict
    seconds: float
    ts_ms: float = 0.0  # TorchScript time of its calls during one run of the model (sample sizes)


def compile_child(child_ts, path: str, specs: list[InputSpec], captures: list[Capture], info, model_path: str | None) -> Compiled:
    t0 = time.perf_counter()
    imported = import_torchscript(child_ts, specs)
    executable = builder.build(imported.mod, info)
    lib = export.library_bytes(executable)
    meta = export.make_metadata(lib, info, specs, imported.num_outputs, {"source_model": model_path, "submodule": path, "fallback": True})
    obj = export.make_runtime_object(lib, meta)
    picks = sorted({round(k * (len(captures) - 1) / max(1, CHECKS_PER_CHILD - 1)) for k in range(CHECKS_PER_CHILD)})
    checks = []
    for k in picks:
        inputs = captures[k].tensors
        ref = run_reference(child_ts, inputs, specs)
        got = list(obj.forward(list(inputs)))
        res = compare(got, ref)
        res["input_shapes"] = [list(t.shape) for t in inputs]
        checks.append(res)
    ok = all(c["ok"] for c in checks)
    return Compiled(path, obj, specs, imported.num_outputs, {"ok": ok, "checks": checks}, time.perf_counter() - t0)


def median_ms(fn, repeat: int) -> float:
    samples = []
    with torch.no_grad():
        for _ in range(3):  # the profiling executor optimises after its first runs
            fn()
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def first_sentence(e: Exception) -> str:
    if isinstance(e, EngineError):
        return e.message
    lines = [l for l in str(e).strip().splitlines() if l.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


@dataclass
class Partitioned:
    module: torch.jit.ScriptModule  # the rewritten model
    compiled: dict[str, Compiled]
    modules: list[dict]  # [{name, compiled, reason?}]
    coverage: dict
    num_outputs: int = 0
    extra: dict = field(default_factory=dict)
