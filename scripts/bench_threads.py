"""Threads: one pool or two. Compiled modules run TVM's parallel loops on torch's OpenMP pool by
default (the pool oneDNN already uses); TORCHTVM_THREAD_POOL=tvm keeps TVM's own pool beside it.

    .venv/bin/python scripts/bench_threads.py [--model assets/models/resnet18.pt] [--threads T] [--rounds R]

Builds the model once (default placement: library kernels where they have one), loads the library
twice in this process (one copy routed to torch's pool, one on TVM's pool), and times them in
interleaved rounds with the same thread count for torch and TVM. Prints p50/p90 and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "native", "engine"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "assets", "models", "resnet18.pt"))
    ap.add_argument("--input", default="1,3,224,224")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=10, help="runs per round")
    args = ap.parse_args()

    os.environ["TVM_NUM_THREADS"] = str(args.threads)  # TVM's own pool: the same count as torch
    import torch

    torch.set_num_threads(args.threads)
    from torchtvm.backend import build as builder
    from torchtvm.backend.executor import TvmRunner
    from torchtvm.frontend.importer import import_torchscript
    from torchtvm.frontend.loader import load_model
    from torchtvm.common.specs import parse_specs, random_inputs

    specs = parse_specs([{"name": "x", "dims": [int(d) for d in args.input.split(",")], "dtype": "float32"}])
    imported = import_torchscript(load_model(args.model), specs)
    info = builder.resolve_target("llvm", args.threads)
    executable, offloads = builder.build_placed(imported.mod, info)
    sample = random_inputs(specs)
    tmp = tempfile.mkdtemp(prefix="torchtvm-threads-")
    try:
        path = builder.export_library(executable, os.path.join(tmp, "torch_pool.so"))
        runners = {"torch's OpenMP pool (default)": TvmRunner.from_library(path)}
        other = shutil.copy(path, os.path.join(tmp, "tvm_pool.so"))  # a second copy loads apart
        os.environ["TORCHTVM_THREAD_POOL"] = "tvm"
        runners["TVM's pool beside torch's"] = TvmRunner.from_library(other)
        del os.environ["TORCHTVM_THREAD_POOL"]
        times: dict[str, list[float]] = {k: [] for k in runners}
        for r in runners.values():
            r.time_ms(sample, repeat=3)
        for _ in range(args.rounds):
            for name, r in runners.items():
                times[name].extend(r.time_ms(sample, repeat=args.runs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{os.path.basename(args.model)} [{args.input}], {len(offloads)} op(s) in library kernels, {args.threads} thread(s), {args.rounds} interleaved rounds x {args.runs} runs")
    base = statistics.median(next(iter(times.values())))
    print(f"{'pool':34} {'p50':>10} {'p90':>10} {'vs default':>11}")
    for name, t in times.items():
        t = sorted(t)
        p50, p90 = statistics.median(t), t[int(0.9 * (len(t) - 1))]
        print(f"{name:34} {p50:8.3f} ms {p90:8.3f} ms {p50 / base:10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
