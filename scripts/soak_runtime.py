"""Soak of the deployable module: an exported model with a symbolic batch, called 100,000 times
with mixed batch sizes from 2 threads, as a server would. Resident memory must stay flat.

    .venv/bin/python scripts/soak_runtime.py [--calls 100000] [--threads 2] [--json]

Builds (once, cached under .soak/) a small MLP exported with batch 1..32, then loads it the way a
deployment does (torch + libtorchtvm_runtime.so only, no TVM compiler) and calls it: every call a
random batch size, every 7th input a transposed (strided) view and every 11th a neg-bit view (the
copy paths), every 13th output mutated in place (outputs are the caller's). Every 500th call is
checked against the TorchScript model. Prints RSS after warm-up, at the end, and a curve of 20
points; exits 1 when RSS grows by more than --max-growth-mb after warm-up or a result is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, ".soak")
FEATURES, HIDDEN, CLASSES, MAX_BATCH = 64, 128, 10, 32


def build(folder: str) -> None:
    """Compile and export the soak model (in its own process: the compiler stays out of the soak)."""
    sys.path.insert(0, os.path.join(REPO, "native", "engine"))
    import torch
    import torch.nn as nn

    from torchtvm.common.progress import JobContext
    from torchtvm.pipeline.compile import compile_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES)).eval()
    os.makedirs(folder, exist_ok=True)
    src = os.path.join(folder, "mlp.pt")
    torch.jit.save(torch.jit.trace(model, torch.randn(2, FEATURES)), src)
    spec = [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": MAX_BATCH}, FEATURES], "dtype": "float32"}]
    r = compile_model({"model": src, "inputs": spec, "out_dir": os.path.join(folder, "build"), "measure": False, "export_path": os.path.join(folder, "mlp_tvm.pt")}, JobContext("soak"))
    if not r["verification"]["ok"]:
        sys.exit(f"soak: the model did not verify: {r['verification']}")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(folder: str, calls: int, threads: int, points: int = 20) -> dict:
    import torch

    torch.ops.load_library(os.path.join(REPO, "native", "engine", "torchtvm", "lib", "libtorchtvm_runtime.so"))
    torch.set_num_threads(1)  # two caller threads on two cores, as a small server would
    m = torch.jit.load(os.path.join(folder, "mlp_tvm.pt"))
    ref = torch.jit.load(os.path.join(folder, "mlp.pt"))
    inputs = {b: torch.randn(b, FEATURES) for b in range(1, MAX_BATCH + 1)}
    strided = {b: torch.randn(FEATURES, b).t() for b in range(1, MAX_BATCH + 1)}
    expected = {b: ref(inputs[b]) for b in inputs}

    done = [0]
    errors: list[str] = []
    lock = threading.Lock()
    curve: list[tuple[int, float]] = []
    step = max(1, calls // points)
    warmup = min(2000, calls // 10)
    start_rss = [None]

    def worker(seed: int, n: int):
        rnd = random.Random(seed)
        with torch.no_grad():
            for i in range(n):
                b = rnd.randint(1, MAX_BATCH)
                if i % 7 == 3:
                    x = strided[b]
                elif i % 11 == 5:
                    x = torch._neg_view(-inputs[b])  # reads as inputs[b]
                else:
                    x = inputs[b]
                try:
                    out = m(x)  # called as the model is
                except Exception as e:  # counted as a wrong result; the soak goes on
                    errors.append(f"batch {b} ({'strided' if i % 7 == 3 else 'neg view' if i % 11 == 5 else 'plain'}): {str(e).strip().splitlines()[-1][:200]}")
                    continue
                if i % 500 == 0:
                    want = ref(x)
                    if not torch.allclose(out, want, atol=1e-4, rtol=1e-3):
                        errors.append(f"batch {b}: max error {(out - want).abs().max().item():.3g}")
                elif x is inputs[b] and i % 97 == 0 and not torch.allclose(out, expected[b], atol=1e-4, rtol=1e-3):
                    errors.append(f"batch {b}: a later call saw a changed result")
                if i % 13 == 0:
                    out.add_(1000.0)  # the caller's own: must not leak into later calls
                with lock:
                    done[0] += 1
                    k = done[0]
                    if k == warmup:
                        start_rss[0] = rss_mb()
                    if k % step == 0:
                        curve.append((k, round(rss_mb(), 1)))

    t0 = time.perf_counter()
    initial = rss_mb()
    per = [calls // threads + (1 if t < calls % threads else 0) for t in range(threads)]
    ts = [threading.Thread(target=worker, args=(t, per[t])) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    seconds = time.perf_counter() - t0
    end = rss_mb()
    start = start_rss[0] if start_rss[0] is not None else initial
    return {"calls": done[0], "threads": threads, "seconds": round(seconds, 1), "calls_per_s": round(done[0] / seconds),
            "rss_mb": {"before_calls": round(initial, 1), "after_warmup": round(start, 1), "end": round(end, 1), "growth_after_warmup": round(end - start, 1)},
            "curve": curve, "errors": errors[:10], "error_count": len(errors)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-growth-mb", type=float, default=16.0)
    ap.add_argument("--folder", default=CACHE)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only:
        build(args.folder)
        return 0
    if not os.path.exists(os.path.join(args.folder, "mlp_tvm.pt")):
        print("soak: compiling and exporting the soak model (once)...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--build-only", "--folder", args.folder], check=True)
    r = soak(args.folder, args.calls, args.threads)
    ok = r["error_count"] == 0 and r["rss_mb"]["growth_after_warmup"] <= args.max_growth_mb
    r["ok"] = ok
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        mb = r["rss_mb"]
        print(f"{r['calls']} calls on {r['threads']} threads in {r['seconds']} s ({r['calls_per_s']} calls/s), batch 1..{MAX_BATCH}")
        print(f"RSS: {mb['before_calls']} MB before, {mb['after_warmup']} MB after warm-up, {mb['end']} MB at the end ({mb['growth_after_warmup']:+} MB)")
        print("RSS curve (calls: MB): " + ", ".join(f"{k}: {v}" for k, v in r["curve"]))
        if r["errors"]:
            print("wrong results:", r["errors"])
        print("flat" if ok else f"NOT OK: growth above {args.max_growth_mb} MB or wrong results")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
