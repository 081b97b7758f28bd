"""Tuning benchmark: ResNet-18 (1x3x224x224 float32) tuned with a trial budget; prints tuned TVM p50
vs untuned TVM p50 vs TorchScript p50 (same process, same threads) and writes the estimated
latency-vs-trials curve as CSV.

    .venv/bin/python scripts/bench_tune.py [--trials 200] [--work-dir DIR] [--csv curve.csv]
"""

import argparse
import csv
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "models", "resnet18.pt"))
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--trials-per-task", type=int, default=None)
    ap.add_argument("--work-dir", default=os.path.join(ROOT, "bench-results", "tune-resnet18"))
    ap.add_argument("--csv", default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from torchtvm.common.progress import JobContext
    from torchtvm.pipeline.compile import compile_model
    from torchtvm.pipeline.compile import tune_and_build

    inputs = [{"name": "x", "dims": [1, 3, 224, 224], "dtype": "float32"}]
    log = lambda ev, d: print(f"[{d.get('stage')}] {d.get('message')}", file=sys.stderr, flush=True) if ev == "job.progress" else None

    t0 = time.perf_counter()
    untuned = compile_model({"model": args.model, "inputs": inputs, "threads": args.threads, "out_dir": os.path.join(args.work_dir, "..", "untuned-build")}, JobContext("bench", log))
    untuned_s = time.perf_counter() - t0

    def on_event(ev, d):
        if ev == "tune.trial" and d["total_trials"] % 8 == 0:
            print(f"  trial {d['total_trials']}/{args.trials} est {d['estimated_total_ms']}", file=sys.stderr, flush=True)
        log(ev, d)

    t0 = time.perf_counter()
    tuned = tune_and_build(args.model, inputs, trials=args.trials, trials_per_task=args.trials_per_task, work_dir=args.work_dir, threads=args.threads, on_event=on_event, out_dir=os.path.join(args.work_dir, "..", "tuned-build")).result
    tune_wall = time.perf_counter() - t0

    tl, ul = tuned["latency_ms"], untuned["latency_ms"]
    t = tuned["tuning"]
    print(f"\nResNet-18 1x3x224x224 float32, {tuned['threads']} thread(s), target {tuned['target'].get('mcpu')}")
    print(f"budget {args.trials} trials ({t['new_trials']} measured now, {t['resumed_records']} reused), {len(t['tasks'])} tasks, tuning wall {tune_wall:.0f} s (untuned build {untuned_s:.0f} s)\n")
    print(f"{'':22}{'p50 ms':>10}{'p90 ms':>10}{'vs torch':>10}")
    for name, lat, ref in (("TorchScript", tl["torch"], tl["torch"]), ("TVM untuned", ul["tvm"], tl["torch"]), ("TVM tuned", tl["tvm"], tl["torch"])):
        print(f"{name:22}{lat['p50']:10.2f}{lat['p90']:10.2f}{lat['p50'] / ref['p50']:9.2f}x")
    print(f"{'estimated (Σ w×best)':22}{t['estimated_ms'] or float('nan'):10.2f}")
    path = args.csv or os.path.join(args.work_dir, "..", f"tune-curve-{args.trials}.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["total_trials", "estimated_ms"])
        for p in t["curve"]:
            w.writerow([p["total_trials"], "" if p["estimated_ms"] is None else f"{p['estimated_ms']:.4f}"])
    print(f"\ncurve: {os.path.abspath(path)}")
    return 0 if tuned["verification"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
