"""Checking a compiled model against the model the user brought: random inputs at every size a
symbolic dim can take (its sample, its ends, a middle value), then edge values (NaN, inf, -0.0,
huge, tiny, zeros), which are reported apart."""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch

from torchtvm.common.errors import EngineError
from torchtvm.common.specs import SymDim, random_inputs
from torchtvm.verify.compare import compare, edge_cases, summarize_edge
from torchtvm.verify.reference import run_reference


class Runner(Protocol):
    """Anything that runs the compiled model: the TVM executor, or a partly compiled TorchScript."""

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]: ...


# Largest total input element count a verification run at a range's upper end may use; above it the
# "high" check runs at the largest size that fits (and says so in the result).
_VERIFY_MAX_ELEMENTS = 1 << 20


def verification_shapes(specs) -> list[list[tuple[int, ...]]] | None:
    """Shape sets that exercise every symbolic dim: the sample size, each range's minimum, a middle
    value and its maximum (all symbols together, sharing one value per symbol across inputs), and
    with several symbols one mixed set (first symbol low, the others high). None when all static."""
    syms: dict[str, SymDim] = {}
    for s in specs:
        for d in s.dims:
            if isinstance(d, SymDim):
                syms.setdefault(d.name, d)
    if not syms:
        return None

    def shapes(values: dict) -> list[tuple[int, ...]]:
        return [tuple(d if isinstance(d, int) else values[d.name] for d in s.dims) for s in specs]

    def elements(values: dict) -> int:
        return sum(math.prod(shp) for shp in shapes(values))

    high = {n: d.max for n, d in syms.items()}
    while elements(high) > _VERIFY_MAX_ELEMENTS and any(high[n] > syms[n].min for n in high):
        n = max(high, key=lambda k: high[k] - syms[k].min)
        high[n] = max(syms[n].min, high[n] // 2)
    low = {n: d.min for n, d in syms.items()}
    mid = {n: (low[n] + high[n] + 1) // 2 for n in syms}
    sample = {n: d.sample() for n, d in syms.items()}
    candidates = [sample, low, mid, high]
    if len(syms) > 1:
        first = next(iter(syms))
        candidates.append({n: (low[n] if n == first else high[n]) for n in syms})
    out: list[list[tuple[int, ...]]] = []
    for c in candidates:
        shp = shapes(c)
        if shp not in out:
            out.append(shp)
    return out


def verify_runner(module, runner: Runner, specs, shapes=None, seed: int = 0, subject: str = "The compiled module") -> dict:
    """Run both on the same random inputs (seeds `seed`, `seed + 1`, …); for symbolic dims, at each
    size set in `shapes`. `subject` names the runner in errors."""
    shape_sets = shapes or [None]
    checks = []
    for i, shp in enumerate(shape_sets):
        inputs = random_inputs(specs, shp, seed=seed + i)
        ref = run_reference(module, inputs, specs)
        try:
            got = runner.run(inputs)
        except EngineError as e:
            raise EngineError("run_failed", f"{subject} failed on inputs of shape {[list(t.shape) for t in inputs]}: {e.message}", e.detail) from e
        except Exception as e:
            raise EngineError("run_failed", f"{subject} failed on inputs of shape {[list(t.shape) for t in inputs]}: {str(e).strip().splitlines()[-1][:300]}", str(e)) from e
        res = compare(got, ref)
        res["input_shapes"] = [list(t.shape) for t in inputs]
        checks.append(res)
    if len(checks) == 1:
        return checks[0]
    worst = next((c for c in checks if not c["ok"]), checks[0])
    return {"ok": all(c["ok"] for c in checks), "outputs": worst["outputs"], "checks": checks}


def verify_edge_values(module, runner: Runner, specs) -> dict:
    """The same comparison on inputs full of edge values (verify.edge_cases), at the sample shape.
    Reported apart from the random-input verification: a difference here is a warning about how
    the compiled code treats NaN/inf/extremes, not a wrong result on ordinary inputs."""
    cases = []
    for name, inputs in edge_cases(specs):
        entry: dict[str, Any] = {"case": name}
        try:
            ref = run_reference(module, inputs, specs)
        except EngineError as e:
            entry.update(ok=True, skipped=f"PyTorch itself rejects these inputs: {e.message}")
            cases.append(entry)
            continue
        try:
            entry.update(compare(runner.run(inputs), ref))
        except Exception as e:
            entry.update(ok=False, reason=f"The compiled module failed on these inputs: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__}")
        cases.append(entry)
    return summarize_edge(cases)
