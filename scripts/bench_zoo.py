#!/usr/bin/env python
"""The model-zoo table: every model of test/python/_zoo_models.py, static and symbolic, compiled
the default way (fallback on, untuned), with the ops compiled, the share of TorchScript's run time
that now runs in TVM, verification against PyTorch and the p50 of TVM vs TorchScript measured in
the same run (the compile job's own latency measurement, same process and threads).

    npm run bench:zoo        # or: .venv/bin/python scripts/bench_zoo.py [--models bert,vit] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "native", "engine"))
sys.path.insert(0, os.path.join(ROOT, "test", "python"))

import torch  # noqa: E402
from _zoo_models import zoo  # noqa: E402
from torchtvm.backend import latency  # noqa: E402
from torchtvm.backend.executor import TvmRunner  # noqa: E402
from torchtvm.common.specs import parse_specs, random_inputs  # noqa: E402
from torchtvm.common.errors import EngineError  # noqa: E402
from torchtvm.common.progress import JobContext  # noqa: E402
from torchtvm.pipeline.fallback.modules import count_ops  # noqa: E402
from torchtvm.pipeline.compile import compile_model
from torchtvm.pipeline.stages import set_threads  # noqa: E402


def dims_text(specs) -> str:
    def d(x):
        return str(x) if isinstance(x, int) else f"{x['name']}={x['min']}..{x['max']}"

    return "; ".join(f"{s['name']}[{','.join(d(x) for x in s['dims'])}]" for s in specs)


def run_one(name, make, specs, folder, threads):
    path = os.path.join(folder, f"{name}.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = make()
        ts.save(path)
    total = count_ops(ts)
    params = {"model": path, "inputs": specs, "out_dir": os.path.join(folder, "build", f"{name}-{len(specs)}-{abs(hash(json.dumps(specs)))}"), "threads": threads, "measure": False, "edge_values": False}
    t0 = time.perf_counter()
    try:
        r = compile_model(params, JobContext("bench"))
    except EngineError as e:
        return {"error": f"{e.code}: {e.message}", "ops_total": total}
    row = {"seconds": round(time.perf_counter() - t0, 1), "ok": bool(r["verification"].get("ok"))}
    if "coverage" in r:
        c = r["coverage"]
        row.update(mode="fallback", ops_compiled=c["ops_compiled"], ops_total=c["ops_total"], share=c["time_share_compiled"],
                   segments=", ".join(m["name"] for m in c["modules"] if m["compiled"]))
    else:
        row.update(mode="whole", ops_compiled=total, ops_total=total, share=1.0, segments="(whole graph)")
    # Both timed here, one after the other, after a generous warm-up: TorchScript's profiling
    # executor re-optimises during its first runs, which a short warm-up mistakes for latency.
    sample = random_inputs(parse_specs(r["inputs"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(path)
    if "coverage" in r:
        tvm = latency.time_torch(torch.jit.load(r["files"]["partitioned"]), sample, repeat=50, warmup=10)
    else:
        tvm = latency.time_tvm(TvmRunner.from_library(r["files"]["library"], "llvm"), sample, repeat=50)
    torch_lat = latency.time_torch(ts, sample, repeat=50, warmup=10)
    row["tvm_p50"], row["torch_p50"] = tvm["p50"], torch_lat["p50"]
    row["ratio"] = tvm["p50"] / torch_lat["p50"] if torch_lat["p50"] else None
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="", help="comma-separated subset of: " + ", ".join(zoo()))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("TORCHTVM_NUM_THREADS") or os.cpu_count() or 1))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    set_threads(args.threads)
    models = zoo()
    names = [n for n in args.models.split(",") if n] or list(models)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            make, static, symbolic = models[name]
            for kind, specs in (("static", static), ("symbolic", symbolic)):
                row = {"model": name, "kind": kind, "inputs": dims_text(specs), **run_one(name, make, specs, folder, args.threads)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    head = ["model", "dims", "compiled", "ops", "time in TVM", "verify", "TVM p50", "TorchScript p50", "TVM/TS"]
    table = [head]
    for r in rows:
        if "error" in r:
            table.append([r["model"], r["kind"], "FAILED", "-", "-", "-", "-", "-", r["error"][:60]])
            continue
        ms = lambda v: f"{v:.3f} ms" if v is not None else "-"  # noqa: E731
        table.append([r["model"], r["kind"], r["mode"], f"{r['ops_compiled']}/{r['ops_total']}", f"{100 * r['share']:.0f}%",
                      "ok" if r["ok"] else "MISMATCH", ms(r["tvm_p50"]), ms(r["torch_p50"]), f"{r['ratio']:.2f}x" if r["ratio"] else "-"])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"\nuntuned, {args.threads} thread(s); fallback rows: compiled segments — " +
          "; ".join(f"{r['model']}/{r['kind']}: {r['segments']}" for r in rows if r.get("mode") == "fallback"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
