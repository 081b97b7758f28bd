"""Measure the deployable runtime op.

    .venv/bin/python scripts/bench_runtime.py [--resnet] [--runs N]

1. Per-call overhead on a tiny model: the exported .pt (TorchScript -> torch.classes.torchtvm.Module
   -> TVM VM) against calling the same executable through TVM's Python VM (with tensors already
   in TVM, and with torch -> TVM DLPack conversion per call). Median µs over many calls.
2. With --resnet: ResNet-18 (assets/models/resnet18.pt, 1x3x224x224 float32, untuned) exported .pt
   p50 against the original TorchScript p50, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "native", "engine"))

from torchtvm.backend import build as builder
from torchtvm.deploy import export  # noqa: E402
from torchtvm.frontend.importer import import_torchscript  # noqa: E402
from torchtvm.common.progress import JobContext  # noqa: E402
from torchtvm.common.specs import parse_specs  # noqa: E402


def median_us(fn, n: int, warmup: int = 50) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return statistics.median(samples)


class Tiny(torch.nn.Module):
    def forward(self, x):
        return x * 2.0 + 1.0


def bench_overhead(n: int) -> dict:
    import tvm
    from tvm import relax

    specs = parse_specs([{"name": "x", "dims": [1, 16], "dtype": "float32"}])
    imp = import_torchscript(torch.jit.script(Tiny()), specs)
    info = builder.resolve_target("llvm", 1)
    ex = builder.build(imp.mod, info)
    with tempfile.TemporaryDirectory() as d:
        pt = export.save_exported(os.path.join(d, "tiny_tvm.pt"), ex, info, specs, 1)
        op_module = torch.jit.load(pt)
    x = torch.randn(1, 16)
    inputs = [x]
    raw = op_module.torchtvm_module
    vm = relax.VirtualMachine(ex, tvm.cpu())
    main = vm["main"]
    xt = tvm.runtime.from_dlpack(x)
    res = {
        "exported_pt_us": median_us(lambda: op_module(inputs), n),
        "custom_class_direct_us": median_us(lambda: raw.forward(inputs), n),
        "tvm_python_vm_us": median_us(lambda: main(xt), n),
        "tvm_python_vm_with_dlpack_us": median_us(lambda: [torch.from_dlpack(o) for o in main(tvm.runtime.from_dlpack(x))], n),
        "pytorch_eager_us": median_us(lambda: Tiny()(x), n),
        "calls": n,
        "input_copies": raw.copies(),
    }
    return res


def bench_resnet(runs: int) -> dict:
    from torchtvm.pipeline.compile import compile_model

    model = os.path.join(REPO, "assets", "models", "resnet18.pt")
    with tempfile.TemporaryDirectory() as d:
        pt = os.path.join(d, "resnet18_tvm.pt")
        t0 = time.perf_counter()
        result = compile_model({"model": model, "inputs": [{"name": "x", "dims": [1, 3, 224, 224], "dtype": "float32"}], "out_dir": os.path.join(d, "build"), "measure": False, "export_path": pt}, JobContext("bench"))
        build_s = time.perf_counter() - t0
        exported = torch.jit.load(pt)
    original = torch.jit.load(model)
    x = torch.rand(1, 3, 224, 224)

    def p50(fn):
        fn()  # warm-up (TorchScript's profiling executor optimises after its first runs)
        fn()
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts)

    with torch.no_grad():
        ts_ms = p50(lambda: original(x))
        tvm_ms = p50(lambda: exported(x))  # called as the model is
        ts_ms2 = p50(lambda: original(x))
    return {"runs": runs, "torchscript_p50_ms": ts_ms, "torchscript_p50_ms_again": ts_ms2, "exported_tvm_p50_ms": tvm_ms,
            "ratio_tvm_over_torchscript": tvm_ms / ((ts_ms + ts_ms2) / 2), "build_s": round(build_s, 1),
            "verification_ok": result["verification"]["ok"], "threads": result["threads"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--resnet", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    args = ap.parse_args()
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "overhead": bench_overhead(args.calls)}
    if args.resnet:
        out["resnet18"] = bench_resnet(args.runs)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    o = out["overhead"]
    print(f"Per-call time, tiny model (x*2+1 on 1x16 float32), median of {o['calls']} calls, torch {out['torch']}")
    rows = [("exported .pt: TorchScript -> torchtvm.Module -> TVM VM", o["exported_pt_us"]),
            ("torchtvm.Module.forward called directly", o["custom_class_direct_us"]),
            ("TVM Python VM, tensors already in TVM", o["tvm_python_vm_us"]),
            ("TVM Python VM + DLPack torch<->TVM per call", o["tvm_python_vm_with_dlpack_us"]),
            ("PyTorch eager (reference)", o["pytorch_eager_us"])]
    for name, us in rows:
        print(f"  {name:56}{us:9.1f} us")
    print(f"  input copies made by the op over all calls: {o['input_copies']}")
    if args.resnet:
        r = out["resnet18"]
        print(f"\nResNet-18 1x3x224x224 float32, untuned, {r['threads']} thread(s), median of {r['runs']} runs (build {r['build_s']} s, verification ok: {r['verification_ok']})")
        print(f"  {'TorchScript (before / after)':40}{r['torchscript_p50_ms']:9.2f} / {r['torchscript_p50_ms_again']:.2f} ms")
        print(f"  {'exported .pt (TVM)':40}{r['exported_tvm_p50_ms']:9.2f} ms   ratio {r['ratio_tvm_over_torchscript']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
