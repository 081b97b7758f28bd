"""Numerical check of TVM against PyTorch on the same random inputs, with dtype-aware tolerances."""

from __future__ import annotations

import torch

# (atol, rtol) relative to the reference output's scale.
TOLERANCES = {
    torch.float32: (1e-4, 1e-3),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
    torch.float64: (1e-7, 1e-6),
}


def compare(tvm_out: list[torch.Tensor], ref_out: list[torch.Tensor]) -> dict:
    outputs = []
    ok = len(tvm_out) == len(ref_out)
    for i, (a, r) in enumerate(zip(tvm_out, ref_out)):
        entry = {"index": i, "shape": list(r.shape), "dtype": str(r.dtype).replace("torch.", "")}
        if list(a.shape) != list(r.shape):
            entry.update(ok=False, max_abs=None, max_rel=None, reason=f"shape {list(a.shape)} != {list(r.shape)}")
            ok = False
            outputs.append(entry)
            continue
        if r.dtype.is_floating_point:
            a64, r64 = a.double(), r.double()
            diff = (a64 - r64).abs()
            scale = float(r64.abs().max()) if r64.numel() else 0.0
            atol, rtol = TOLERANCES.get(r.dtype, (1e-4, 1e-3))
            max_abs = float(diff.max()) if diff.numel() else 0.0
            max_rel = float((diff / r64.abs().clamp_min(max(scale, 1e-12) * 1e-3)).max()) if diff.numel() else 0.0
            # An error is acceptable when it is small against the output's own scale.
            passed = bool(max_abs <= atol + rtol * scale) and not bool(torch.isnan(a64).any() and not torch.isnan(r64).any())
            entry.update(max_abs=max_abs, max_rel=max_rel, atol=atol, rtol=rtol, scale=scale, ok=passed)
        else:
            mism = (a.to(r.dtype) != r).sum().item()
            entry.update(max_abs=float((a.long() - r.long()).abs().max()) if r.numel() else 0.0, max_rel=0.0 if mism == 0 else 1.0, ok=mism == 0)
        ok = ok and entry["ok"]
        outputs.append(entry)
    if len(tvm_out) != len(ref_out):
        return {"ok": False, "outputs": outputs, "reason": f"TVM returned {len(tvm_out)} outputs, PyTorch {len(ref_out)}"}
    return {"ok": ok, "outputs": outputs}
