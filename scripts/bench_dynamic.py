#!/usr/bin/env python
"""Latency of one symbolic-batch TVM module against static modules built for each batch size.

    .venv/bin/python scripts/bench_dynamic.py [--model mlp|conv] [--batches 1,8,32] [--repeat 30] [--threads 2]

Builds the model once with batch = 1..max(batches) and once per batch size with that size fixed
(untuned, the engine's default pipeline), then times each pair in the same run, interleaved
(symbolic, static, symbolic, ...), with TVM's own evaluator; prints medians and the ratio
symbolic / static (1.00 = no cost for serving every size from one module). TorchScript's median is
shown for scale (measured first, untuned TVM is not expected to beat it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "native", "engine"))

from torchtvm.backend import build as builder  # noqa: E402
from torchtvm.backend.executor import TvmRunner  # noqa: E402
from torchtvm.frontend.importer import import_torchscript  # noqa: E402
from torchtvm.pipeline.stages import set_threads  # noqa: E402
from torchtvm.common.specs import parse_specs  # noqa: E402


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        y = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(y.mean((2, 3)))


MODELS = {"mlp": (MLP, [256]), "conv": (Conv, [3, 16, 16])}


def build(ts, dims, info):
    specs = parse_specs([{"name": "x", "dims": dims, "dtype": "float32"}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imported = import_torchscript(ts, specs)
    return TvmRunner(builder.build(imported.mod, info), info.kind)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="mlp")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--repeat", type=int, default=30, help="interleaved rounds per batch size")
    ap.add_argument("--number", type=int, default=20, help="runs averaged inside one round")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    batches = [int(b) for b in args.batches.split(",")]
    threads = set_threads(args.threads)
    info = builder.resolve_target("llvm", threads)
    factory, rest = MODELS[args.model]
    torch.manual_seed(0)
    model = factory().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(model, (torch.randn(2, *rest),))

    # TorchScript first, before TVM's thread pool exists (its spinning workers would slow torch).
    ts_median = {}
    for b in batches:
        x = torch.randn(b, *rest)
        samples = []
        with torch.no_grad():
            for _ in range(3):
                ts(x)
            for _ in range(args.repeat):
                t1 = time.perf_counter()
                for _ in range(args.number):
                    ts(x)
                samples.append((time.perf_counter() - t1) * 1e3 / args.number)
        ts_median[b] = statistics.median(samples)

    t0 = time.perf_counter()
    sym = build(ts, [{"name": "batch", "min": 1, "max": max(batches)}] + rest, info)
    print(f"built symbolic module (batch 1..{max(batches)}) in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for b in batches:
        t0 = time.perf_counter()
        static = build(ts, [b] + rest, info)
        build_s = time.perf_counter() - t0
        x = torch.randn(b, *rest)
        with torch.no_grad():
            ref = ts(x)
        for r in (sym, static):
            assert torch.allclose(r.run([x])[0], ref, atol=1e-4, rtol=1e-3), "TVM output differs from TorchScript"
        s_ms, t_ms = [], []
        sym.time_ms([x], repeat=3, number=args.number)
        static.time_ms([x], repeat=3, number=args.number)
        for _ in range(args.repeat):
            s_ms += sym.time_ms([x], repeat=1, number=args.number)
            t_ms += static.time_ms([x], repeat=1, number=args.number)
        s, t, p = statistics.median(s_ms), statistics.median(t_ms), ts_median[b]
        rows.append((b, t, s, s / t, p, build_s))
        print(f"batch {b}: static {t:.4f} ms, symbolic {s:.4f} ms", flush=True)

    print(f"\n{args.model}, llvm ({info.mcpu}), {threads} thread(s), median of {args.repeat} rounds x {args.number} runs (same run, interleaved)")
    print(f"{'batch':>5}  {'static ms':>10}  {'symbolic ms':>11}  {'sym/static':>10}  {'TorchScript ms':>14}  {'static build s':>14}")
    for b, t, s, ratio, p, build_s in rows:
        print(f"{b:>5}  {t:>10.4f}  {s:>11.4f}  {ratio:>10.2f}  {p:>14.4f}  {build_s:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
