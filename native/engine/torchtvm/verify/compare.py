"""Numerical check of TVM against PyTorch on the same inputs.

What must match exactly: the number of outputs, each output's dtype and shape, where the NaNs are,
and where the infinities are with their signs. Only the finite values are compared with tolerances
(which depend on the dtype), so one inf in the reference cannot widen the tolerance to infinity.

Every metric is JSON-safe whatever the values: a non-finite number is written as the string
"inf", "-inf" or "nan" (JSON has no such numbers and the engine's replies refuse them).

`edge_inputs` makes the "edge values" inputs (NaN, +-inf, -0.0, huge and tiny magnitudes, all
zeros) whose comparison is reported separately from the random-input verification.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from torchtvm.common.specs import random_inputs

# (atol, rtol) relative to the reference output's largest finite magnitude.
TOLERANCES = {
    torch.float32: (1e-4, 1e-3),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
    torch.float64: (1e-7, 1e-6),
}


def json_number(x: float | int | None):
    """A number JSON can carry: finite floats as they are, non-finite ones as strings."""
    if x is None or isinstance(x, (bool, int)):
        return x
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def json_safe(obj):
    """`obj` with every non-finite float replaced by its string (see json_number), recursively."""
    if isinstance(obj, float):
        return json_number(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def _compare_float(a: torch.Tensor, r: torch.Tensor, entry: dict) -> bool:
    a64, r64 = a.double(), r.double()
    nan_a, nan_r = torch.isnan(a64), torch.isnan(r64)
    pinf_a, pinf_r = a64 == math.inf, r64 == math.inf
    ninf_a, ninf_r = a64 == -math.inf, r64 == -math.inf
    nan_mismatch = int((nan_a != nan_r).sum())
    inf_mismatch = int(((pinf_a != pinf_r) | (ninf_a != ninf_r)).sum())
    finite = torch.isfinite(a64) & torch.isfinite(r64)
    atol, rtol = TOLERANCES.get(r.dtype, (1e-4, 1e-3))
    if bool(finite.any()):
        fa, fr = a64[finite], r64[finite]
        diff = (fa - fr).abs()
        scale = float(fr.abs().max())
        max_abs = float(diff.max())
        max_rel = float((diff / fr.abs().clamp_min(max(scale, 1e-12) * 1e-3)).max())
    else:
        scale = max_abs = max_rel = 0.0
    # An error is acceptable when it is small against the output's own (finite) scale.
    within = max_abs <= atol + rtol * scale
    reasons = []
    if nan_mismatch:
        reasons.append(f"NaN at {nan_mismatch} position(s) where the other has a number")
    if inf_mismatch:
        reasons.append(f"infinity differs at {inf_mismatch} position(s)")
    if not within:
        reasons.append(f"max abs error {max_abs:.3g} exceeds {atol:g} + {rtol:g} x {scale:.3g}")
    entry.update(
        max_abs=json_number(max_abs),
        max_rel=json_number(max_rel),
        atol=atol,
        rtol=rtol,
        scale=json_number(scale),
        nan_mismatches=nan_mismatch,
        inf_mismatches=inf_mismatch,
        nonfinite_in_reference=int((~torch.isfinite(r64)).sum()),
        ok=not reasons,
    )
    if reasons:
        entry["reason"] = "; ".join(reasons)
    return not reasons


def compare(tvm_out: list[torch.Tensor], ref_out: list[torch.Tensor]) -> dict:
    outputs = []
    ok = len(tvm_out) == len(ref_out)
    for i, (a, r) in enumerate(zip(tvm_out, ref_out)):
        entry: dict[str, Any] = {"index": i, "shape": list(r.shape), "dtype": _dtype_name(r.dtype)}
        if a.dtype != r.dtype:
            # A dtype change is a different result even when the values agree (x * 0.5 -> float64).
            entry.update(ok=False, max_abs=None, max_rel=None, tvm_dtype=_dtype_name(a.dtype), reason=f"dtype {_dtype_name(a.dtype)} from TVM, {_dtype_name(r.dtype)} from PyTorch")
        elif list(a.shape) != list(r.shape):
            entry.update(ok=False, max_abs=None, max_rel=None, tvm_shape=list(a.shape), reason=f"shape {list(a.shape)} from TVM, {list(r.shape)} from PyTorch")
        elif r.dtype.is_floating_point or r.dtype.is_complex:
            _compare_float(a, r, entry)
        else:
            mism = int((a != r).sum())
            max_abs = float((a.long() - r.long()).abs().max()) if r.numel() else 0.0
            entry.update(max_abs=json_number(max_abs), max_rel=0.0 if mism == 0 else 1.0, mismatches=mism, ok=mism == 0)
            if mism:
                entry["reason"] = f"{mism} value(s) differ"
        ok = ok and entry["ok"]
        outputs.append(entry)
    if len(tvm_out) != len(ref_out):
        return {"ok": False, "outputs": outputs, "reason": f"TVM returned {len(tvm_out)} outputs, PyTorch {len(ref_out)}"}
    return {"ok": ok, "outputs": outputs}


def _finfo(dt: torch.dtype):
    return torch.finfo(dt)


def edge_cases(specs, shapes=None, seed: int = 0) -> list[tuple[str, list[torch.Tensor]]]:
    """(name, inputs) pairs with edge values in every floating-point input; integer and bool
    inputs keep ordinary random values from their range (they have no NaN or inf)."""

    base = random_inputs(specs, shapes, seed=seed)
    floats = [i for i, t in enumerate(base) if t.dtype.is_floating_point]
    if not floats:
        return []
    g = torch.Generator().manual_seed(seed + 1000)

    def with_values(fill) -> list[torch.Tensor]:
        out = list(base)
        for i in floats:
            out[i] = fill(base[i])
        return out

    def sprinkle(t: torch.Tensor, values: list[float]) -> torch.Tensor:
        # About one element in eight gets an edge value, the rest stay ordinary.
        t = t.clone()
        flat = t.view(-1)
        n = flat.numel()
        if n == 0:
            return t
        k = max(1, n // 8)
        idx = torch.randperm(n, generator=g)[:k]
        vals = torch.tensor(values, dtype=torch.float64)[torch.randint(0, len(values), (k,), generator=g)]
        flat[idx] = vals.to(t.dtype)
        return t

    def huge(t):
        fi = _finfo(t.dtype)
        # Large but finite, with room so that a sum of a few does not overflow in PyTorch either.
        return (torch.sign(t) + (t == 0).to(t.dtype)) * (float(fi.max) ** 0.5)

    def tiny(t):
        fi = _finfo(t.dtype)
        return t.sign() * float(fi.tiny) * 4

    return [
        ("nan", with_values(lambda t: sprinkle(t, [math.nan]))),
        ("inf", with_values(lambda t: sprinkle(t, [math.inf, -math.inf]))),
        ("negative_zero", with_values(lambda t: torch.full_like(t, -0.0))),
        ("zeros", with_values(torch.zeros_like)),
        ("huge", with_values(huge)),
        ("tiny", with_values(tiny)),
    ]


def summarize_edge(cases: list[dict]) -> dict:
    """One verdict over the edge-value cases; each case keeps its own outputs and reason."""
    return {"ok": all(c.get("ok") for c in cases), "cases": cases, "failed": [c["case"] for c in cases if not c.get("ok")]}
