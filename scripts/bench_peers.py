#!/usr/bin/env python
"""TVM against the runtimes a user would otherwise pick, in one process, same threads, same inputs.

    npm run bench:peers -- [--models resnet18,encoder,encoder_sdpa,depthwise,lstm] [--rounds 20]
                           [--threads T] [--tune-trials N] [--no-dynamic] [--json [PATH]]
    (= .venv/bin/python scripts/bench_peers.py ...)

Peers, each given the same eval-mode model (scripts/peers_models.py, random weights):
  TorchScript          torch.jit.trace
  TorchScript frozen   torch.jit.freeze + torch.jit.optimize_for_inference of that trace
  ONNX Runtime         torch.onnx.export (legacy TorchScript exporter, dynamo=False; the dynamo
                       exporter if that fails and onnxscript is installed), graph optimizations
                       ORT_ENABLE_ALL, intra_op_num_threads=T
  torch.compile        inductor with torch._inductor.config.freezing = True, under no_grad
  TVM untuned          the engine's compile (default pipeline), exported to a self-contained .pt
                       and loaded as a user would: torch.jit.load(path)(x)
  TVM tuned            the same after `--tune-trials N` MetaSchedule trials (total per model,
                       kept in --work-dir, so a rerun with the same N reuses them and does not
                       retune); skipped (and said so) without the flag

Method: warm-ups, then a per-peer call count so one round of a peer lasts about --round-ms; then
--rounds interleaved rounds (each round runs every peer once, in an order rotated per round, with a
short sleep between peers so the previous peer's spinning thread pool parks). Every call is timed on
its own; p50/p90 are over all of a peer's calls in all rounds (on a shared, loaded machine a
preempted OpenMP thread makes a few calls 10-100x slower, which a per-round mean would absorb). Threads: torch.set_num_threads(T), TVM_NUM_THREADS=T (set before TVM
starts), ORT intra_op_num_threads=T; T defaults to os.cpu_count(). Each peer's outputs are compared
with eager PyTorch's; a mismatch is flagged in the table.

Every peer is built in a try block: one that fails (export, compile, import) is printed as failed
with the reason, and the table still prints. ONNX Runtime and onnx come from
scripts/bench_requirements.txt, pip-installed into this Python the first time (--no-install to
refuse). The encoder's multi-head attention runs with torch's MHA fast path off
(torch.backends.mha.set_fastpath_enabled(False)), so every peer gets the same decomposed graph.

The symbolic-batch line (on by default, --no-dynamic to skip) builds the encoder for batch 1..32
and for batch 1, 8 and 32 fixed, and prints symbolic/static per batch (interleaved rounds too).
A script printing a table, not a test: the figures are for comparing within one run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "scripts", "bench_requirements.txt")
PEERS = ["TorchScript", "TorchScript frozen", "ONNX Runtime", "torch.compile"]
TVM_ROWS = ["TVM untuned", "TVM tuned"]
ROWS = PEERS + TVM_ROWS
DEFAULT_MODELS = "resnet18,encoder,encoder_sdpa,depthwise,lstm"


def log(msg: str) -> None:
    print(f"[bench:peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def short(e: BaseException, limit: int = 200) -> str:
    """One line naming what failed: the last meaningful line of the message."""
    text = str(e).strip()
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith(("File ", "^", "~"))]
    for l in lines:
        if "does not support" in l or "Error" in l or "error" in l:
            return f"{type(e).__name__}: {l.split('[tensor(')[0]}"[:limit]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:limit]


# ---- setup --------------------------------------------------------------------------------------
def ensure_onnxruntime(allow_install: bool):
    """(onnxruntime module, onnx version or None, error or None); pip-installs the pinned wheels once."""

    def attempt():
        import onnx  # noqa: F401
        import onnxruntime

        return onnxruntime, onnx.__version__

    try:
        ort, onnx_ver = attempt()
        return ort, onnx_ver, None
    except ImportError as e:
        missing = str(e)
    if not allow_install:
        return None, None, f"not installed ({missing}); run: {sys.executable} -m pip install -r {os.path.relpath(REQUIREMENTS, os.getcwd())}"
    log(f"onnxruntime/onnx not importable ({missing}); installing the pinned wheels from {os.path.relpath(REQUIREMENTS, ROOT)} into {sys.prefix}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", REQUIREMENTS], capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()
        return None, None, f"pip install -r {os.path.basename(REQUIREMENTS)} failed: {tail[-1] if tail else r.returncode}"
    log(f"installed in {time.perf_counter() - t0:.0f} s")
    importlib.invalidate_caches()
    try:
        ort, onnx_ver = attempt()
        return ort, onnx_ver, None
    except ImportError as e:
        return None, None, f"installed but not importable: {e}"


def cpu_model() -> str:
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name in ("unknown CPU", platform.processor()):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx2", "fma") if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'})"


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# ---- peers --------------------------------------------------------------------------------------
class Row:
    def __init__(self, name: str):
        self.name = name
        self.fn = None          # () -> outputs
        self.status = "ok"      # ok | failed | skipped
        self.reason = ""
        self.note = ""
        self.setup_s = None
        self.samples: list[float] = []
        self.number = 1
        self.rounds = 0
        self.engine = None
        self.max_err = None
        self.mismatch = False

    def fail(self, status: str, reason: str) -> None:
        self.status, self.reason, self.fn = status, reason, None

    def p(self, q: float) -> float | None:
        if not self.samples:
            return None
        s = sorted(self.samples)
        k = (len(s) - 1) * q
        lo, hi = int(k), min(int(k) + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)


def flatten(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten(o)]
    return [torch.as_tensor(out)]


def compare(got, ref) -> tuple[float, bool]:
    """Largest abs difference, and whether it is beyond float32 noise for these models."""
    import torch

    got, worst, bad = flatten(got), 0.0, False
    if len(got) != len(ref):
        return float("inf"), True
    for g, r in zip(got, ref):
        g = torch.as_tensor(g).float().reshape(r.shape) if g.numel() == r.numel() else None
        if g is None:
            return float("inf"), True
        d = (g - r).abs().max().item()
        worst = max(worst, d)
        bad |= d > 1e-3 + 1e-3 * r.abs().max().item()
    return worst, bad


def setup(row: Row, build) -> None:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row.fn = build()
    except Exception as e:  # noqa: BLE001 - a failed peer is a row, not a crash
        row.fail("failed", short(e))
        log(f"  {row.name}: failed: {row.reason}")
        if os.environ.get("BENCH_PEERS_TRACEBACK"):
            traceback.print_exc()
        return
    row.setup_s = time.perf_counter() - t0
    log(f"  {row.name}: ready in {row.setup_s:.1f} s")


def onnx_export(torch, model, x, path: str, n_out: int) -> str:
    names = {"input_names": ["x"], "output_names": [f"y{i}" for i in range(n_out)]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), path, dynamo=False, do_constant_folding=True, **names)
        return "legacy TorchScript exporter"
    except Exception as legacy:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise RuntimeError(f"legacy exporter failed ({short(legacy)}); the dynamo exporter needs onnxscript, not installed") from legacy
        prog = torch.onnx.export(model, (x,), dynamo=True, optimize=True, **names)
        prog.save(path)
        return f"dynamo exporter (legacy failed: {short(legacy, 80)})"


def build_tvm(torch, ts_path: str, dims, out_dir: str, threads: int, trials: int = 0, work_dir: str | None = None) -> tuple[str, dict]:
    """Compile (or tune and compile) with the engine and export the deployable .pt; returns its path."""
    from torchtvm.common.progress import JobContext

    export_path = os.path.join(out_dir, "model_tvm.pt")
    inputs = [{"name": "x", "dims": dims, "dtype": "float32"}]
    common = {"out_dir": out_dir, "measure": False, "export_path": export_path}
    if trials:
        from torchtvm.pipeline.compile import tune_and_build

        def on_event(ev, d):
            if ev == "tune.trial" and d.get("total_trials", 0) % 16 == 0:
                log(f"    trial {d['total_trials']}/{trials}")

        res = tune_and_build(ts_path, inputs, trials=trials, work_dir=work_dir, threads=threads, on_event=on_event, **common).result
    else:
        from torchtvm.pipeline.compile import compile_model

        res = compile_model({"model": ts_path, "inputs": inputs, "threads": threads, **common}, JobContext("bench-peers"))
    exported = (res.get("files") or {}).get("exported")
    if not exported:
        raise RuntimeError(res.get("export_skipped") or "the engine did not export the model")
    return exported, res


def load_tvm(torch, path: str, x):
    import torchtvm  # noqa: F401  registers torch.classes.torchtvm (as a user's `import torchtvm` does)

    m = torch.jit.load(path)
    # An export is called as the model is (whole or partly compiled); one written before that
    # convention, or by the seed API, takes List[Tensor].
    args = m.forward.schema.arguments
    if len(args) > 1 and str(args[1].type).startswith("List["):
        return lambda: m([x])
    return lambda: m(x)


def engine_note(res: dict) -> tuple[str, dict]:
    """What the engine did, for the row's notes (short) and the JSON (details)."""
    details, notes = {}, []
    fb = res.get("fallback")
    if fb:
        cov = res.get("coverage") or {}
        reason = str(fb.get("reason") or "")
        reason = reason.split(". ")[0][:120]
        notes.append(f"PARTLY compiled: {cov.get('ops_compiled', '?')}/{cov.get('ops_total', '?')} ops in TVM, the rest in TorchScript ({reason})")
        details["fallback"] = fb
        details["coverage"] = {k: v for k, v in cov.items() if k != "modules"}
    if res.get("placement") is not None:
        p = details["placement"] = res["placement"]
        notes.append(f"heavy ops: {p.get('library_ops', 0)} library, {p.get('tvm_ops', 0)} TVM")
    ver = res.get("verification") or {}
    if ver and not ver.get("ok", True):
        notes.append("engine verification failed")
    return "; ".join(notes), json.loads(json.dumps(details, default=str))


# ---- timing -------------------------------------------------------------------------------------
def measure(rows: list[Row], rounds: int, round_ms: float, warmup: int, gap_s: float, torch) -> None:
    live = [r for r in rows if r.fn is not None]
    with torch.no_grad():
        for r in live:
            try:
                for _ in range(warmup):
                    r.fn()
                t0 = time.perf_counter()
                for _ in range(3):
                    r.fn()
                one = (time.perf_counter() - t0) / 3 * 1e3
                r.number = max(1, int(round(round_ms / max(one, 1e-3))))
            except Exception as e:  # noqa: BLE001
                r.fail("failed", f"at run time: {short(e)}")
                log(f"  {r.name}: failed at run time: {r.reason}")
        live = [r for r in live if r.fn is not None]
        for i in range(rounds):
            k = i % max(1, len(live))
            for r in live[k:] + live[:k]:
                if r.fn is None:
                    continue
                time.sleep(gap_s)
                try:
                    clock, fn, got = time.perf_counter, r.fn, []
                    for _ in range(r.number):
                        t0 = clock()
                        fn()
                        got.append(clock() - t0)
                    r.samples.extend(v * 1e3 for v in got)
                    r.rounds += 1
                except Exception as e:  # noqa: BLE001
                    r.fail("failed", f"at run time: {short(e)}")


def bench_model(name: str, args, threads: int, ort, ort_err: str | None, torch) -> dict:
    from peers_models import MODELS

    factory, shape, label, n_out = MODELS[name]
    log(f"{name}: {label}")
    work = os.path.join(args.work_dir, name)
    os.makedirs(work, exist_ok=True)
    model = factory()
    torch.manual_seed(1)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = [t.detach().clone() for t in flatten(model(x))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (x,))
            ts_path = os.path.join(work, "model.pt")
            torch.jit.save(traced, ts_path)
    rows = {n: Row(n) for n in ROWS}

    setup(rows["TorchScript"], lambda: (lambda: traced(x)))

    def frozen():
        with torch.no_grad():
            t = torch.jit.trace(model, (x,))
            f = torch.jit.optimize_for_inference(torch.jit.freeze(t.eval()))
        return lambda: f(x)

    setup(rows["TorchScript frozen"], frozen)

    def onnxruntime():
        if ort is None:
            raise RuntimeError(f"onnxruntime unavailable: {ort_err}")
        path = os.path.join(work, "model.onnx")
        rows["ONNX Runtime"].note = onnx_export(torch, model, x, path, n_out)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x.numpy()}
        return lambda: sess.run(None, feed)

    setup(rows["ONNX Runtime"], onnxruntime)

    def compiled():
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        torch._dynamo.reset()
        c = torch.compile(model)
        with torch.no_grad():
            c(x)  # compiles here, not in the warm-ups
        return lambda: c(x)

    def tvm(trials: int):
        def build():
            out = os.path.join(work, f"tvm-tuned-{trials}" if trials else "tvm-untuned")
            path, res = build_tvm(torch, ts_path, list(shape), out, threads, trials, os.path.join(work, "tuning"))
            row = rows["TVM tuned" if trials else "TVM untuned"]
            row.note, row.engine = engine_note(res)
            if trials:
                t = res.get("tuning") or {}
                tuned = f"{t.get('trials')} trials ({t.get('new_trials')} new, {t.get('resumed_records')} reused), tuning {t.get('tune_s') or 0:.0f} s"
                row.note = "; ".join(n for n in (tuned, row.note) if n)
            return load_tvm(torch, path, x)

        return build

    setup(rows["TVM untuned"], tvm(0))
    if args.tune_trials:
        log(f"  TVM tuned: tuning with a budget of {args.tune_trials} trials (work dir {os.path.join(work, 'tuning')})")
        setup(rows["TVM tuned"], tvm(args.tune_trials))
    else:
        rows["TVM tuned"].fail("skipped", "skipped: pass --tune-trials N")
    # torch.compile last: once inductor has compiled a model in this process, oneDNN convolutions and
    # MKL products run slower here for the rest of the process (seen 2026-11-26: ResNet-18 through
    # the library 17.2 -> 19.0 ms, with Winograd 14.3 -> 19.8 ms), which would skew the TVM builds'
    # per-op placement timings. The interleaved measurement below shares that state for all rows.
    setup(rows["torch.compile"], compiled)

    # Correctness before timing.
    with torch.no_grad():
        for r in rows.values():
            if r.fn is None:
                continue
            try:
                r.max_err, r.mismatch = compare(r.fn(), ref)
            except Exception as e:  # noqa: BLE001
                r.fail("failed", f"at run time: {short(e)}")
    log(f"  measuring: {args.rounds} interleaved rounds of ~{args.round_ms:.0f} ms per peer")
    measure(list(rows.values()), args.rounds, args.round_ms, args.warmup, args.gap_ms / 1e3, torch)

    peer_p50 = {n: rows[n].p(0.5) for n in PEERS if rows[n].p(0.5) is not None}
    best = min(peer_p50, key=peer_p50.get) if peer_p50 else None
    ts = rows["TorchScript"].p(0.5)
    out = {"label": label, "input_shape": list(shape), "best_peer": best, "rows": {}}
    for n, r in rows.items():
        p50 = r.p(0.5)
        out["rows"][n] = {
            "status": r.status if r.samples or r.status != "ok" else "failed",
            "reason": r.reason or None,
            "note": r.note or None,
            "p50_ms": p50,
            "p90_ms": r.p(0.9),
            "rounds": r.rounds,
            "calls": len(r.samples),
            "calls_per_round": r.number if r.samples else None,
            "setup_s": None if r.setup_s is None else round(r.setup_s, 2),
            "max_abs_err": r.max_err,
            "mismatch": r.mismatch,
            "engine": r.engine,
            "vs_best_peer": p50 / peer_p50[best] if p50 is not None and best else None,
            "vs_torchscript": p50 / ts if p50 is not None and ts else None,
        }
    return out


def bench_dynamic(model_name: str, args, threads: int, torch) -> dict:
    """Symbolic batch 1..32 module vs static modules at 1, 8, 32 (exported .pt, as a user runs it)."""
    from peers_models import MODELS

    factory, shape, label, _ = MODELS[model_name]
    batches = [1, 8, 32]
    work = os.path.join(args.work_dir, f"dynamic-{model_name}")
    os.makedirs(work, exist_ok=True)
    model = factory()
    rest = list(shape[1:])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (torch.randn(4, *rest),))
    ts_path = os.path.join(work, "model.pt")
    torch.jit.save(traced, ts_path)
    log(f"symbolic batch: {model_name}, batch 1..{max(batches)} vs static {batches}")
    t0 = time.perf_counter()
    sym_path, res = build_tvm(torch, ts_path, [{"name": "batch", "min": 1, "max": max(batches)}] + rest, os.path.join(work, "symbolic"), threads)
    log(f"  symbolic module built in {time.perf_counter() - t0:.1f} s")
    note, _ = engine_note(res)
    result = {"model": model_name, "label": label, "range": [1, max(batches)], "batches": {}, "engine_note": note or None}
    for b in batches:
        static_path, _ = build_tvm(torch, ts_path, [b] + rest, os.path.join(work, f"static-{b}"), threads)
        x = torch.randn(b, *rest)
        sym, static = Row("symbolic"), Row("static")
        sym.fn, static.fn = load_tvm(torch, sym_path, x), load_tvm(torch, static_path, x)
        measure([sym, static], args.rounds, args.round_ms, args.warmup, args.gap_ms / 1e3, torch)
        for r in (sym, static):
            if r.p(0.5) is None:
                raise RuntimeError(f"the {r.name} module at batch {b}: {r.reason or 'no samples'}")
        s, t = sym.p(0.5), static.p(0.5)
        result["batches"][b] = {"symbolic_ms": s, "static_ms": t, "ratio": s / t if s and t else None}
        log(f"  batch {b}: symbolic {s:.3f} ms, static {t:.3f} ms")
    return result


# ---- report -------------------------------------------------------------------------------------
def fmt_ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def fmt_x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def targets(results: dict, dynamic: dict | None) -> list[tuple[str, float | None, float, str]]:
    def ratio(model, row, peer):
        m = results.get(model)
        if not m:
            return None
        a, b = m["rows"][row]["p50_ms"], m["rows"][peer]["p50_ms"]
        return a / b if a and b else None

    out = []
    for model in ("resnet18", "encoder", "encoder_sdpa"):
        if model in results:
            out.append((f"{model}: TVM untuned / ONNX Runtime", ratio(model, "TVM untuned", "ONNX Runtime"), 1.05, ""))
    if "depthwise" in results:
        out.append(("depthwise: TVM untuned / TorchScript frozen", ratio("depthwise", "TVM untuned", "TorchScript frozen"), 1.0, ""))
    if "resnet18" in results:
        out.append(("resnet18: TVM tuned / ONNX Runtime", ratio("resnet18", "TVM tuned", "ONNX Runtime"), 0.95, "" if results["resnet18"]["rows"]["TVM tuned"]["p50_ms"] else "(not tuned in this run)"))
    if dynamic and dynamic.get("batches"):
        for b, d in dynamic["batches"].items():
            out.append((f"{dynamic['model']}: symbolic 1..32 / static, batch {b}", d["ratio"], 1.15, ""))
    return out


def print_report(meta: dict, results: dict, dynamic: dict | None) -> None:
    print()
    print(f"bench:peers  {meta['date']}")
    print(f"CPU: {meta['cpu']}, {meta['cpu_count']} logical CPU(s); threads T={meta['threads']} (torch.set_num_threads, TVM_NUM_THREADS, ORT intra_op)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    print(f"load average: {meta['load_start']} at start, {meta['load_end']} at end; env: {meta['env'] or 'no OMP/GOMP/TVM thread settings'}")
    print(f"method: p50/p90 of every call's time, {meta['rounds']} interleaved rounds of ~{meta['round_ms']:.0f} ms per peer, {meta['warmup']} warm-up calls, one process")
    for name, m in results.items():
        best = m["best_peer"]
        print(f"\n{m['label']}")
        print(f"  {'runtime':<20}{'p50 ms':>9}{'p90 ms':>9}{'vs best peer':>14}{'vs TorchScript':>16}  notes")
        for n, r in m["rows"].items():
            if r["p50_ms"] is None:
                print(f"  {n:<20}{'-':>9}{'-':>9}{'':>14}{'':>16}  {r['status'].upper()}: {r['reason'] or 'no samples'}")
                continue
            notes = []
            if n == best:
                notes.append("fastest peer")
            if r["mismatch"]:
                notes.append(f"OUTPUT MISMATCH (max abs err {r['max_abs_err']:.2g})")
            if r["note"]:
                notes.append(r["note"])
            if n.startswith("TVM") and r["setup_s"] is not None:
                notes.append(f"build {r['setup_s']:.0f} s")
            if n == "torch.compile" and r["setup_s"] is not None:
                notes.append(f"compile {r['setup_s']:.0f} s")
            print(f"  {n:<20}{fmt_ms(r['p50_ms']):>9}{fmt_ms(r['p90_ms']):>9}{fmt_x(r['vs_best_peer']):>14}{fmt_x(r['vs_torchscript']):>16}  {'; '.join(notes)}")

    if dynamic is not None:
        print()
        if dynamic.get("error"):
            print(f"symbolic batch ({dynamic['model']}): FAILED: {dynamic['error']}")
        elif dynamic.get("skipped"):
            print(f"symbolic batch: skipped ({dynamic['skipped']})")
        else:
            parts = [f"batch {b}: {fmt_ms(d['symbolic_ms'])} vs {fmt_ms(d['static_ms'])} ms = {fmt_x(d['ratio'])}" for b, d in dynamic["batches"].items()]
            print(f"symbolic batch ({dynamic['model']}, TVM untuned, one module for batch 1..32 vs a static module per size): " + "; ".join(parts))
            for note in ([f"symbolic module: {dynamic['engine_note']}"] if dynamic.get("engine_note") else []) + dynamic.get("notes", []):
                print(f"  note: {note}")

    # The table: models as rows, p50 ms per runtime, the fastest peer in bold.
    print("\n| model | " + " | ".join(ROWS) + " |")
    print("|---" * (len(ROWS) + 1) + "|")
    for name, m in results.items():
        cells = []
        for n in ROWS:
            r = m["rows"][n]
            if r["p50_ms"] is None:
                cells.append("skipped" if r["status"] == "skipped" else "failed")
            elif n == m["best_peer"]:
                cells.append(f"**{fmt_ms(r['p50_ms'])}**")
            elif n.startswith("TVM") and r["vs_best_peer"]:
                cells.append(f"{fmt_ms(r['p50_ms'])} ({fmt_x(r['vs_best_peer'])} best)")
            else:
                cells.append(fmt_ms(r["p50_ms"]))
        print(f"| {m['label']} | " + " | ".join(cells) + " |")

    tg = targets(results, dynamic)
    if tg:
        print("\nissue #10 targets (same-run ratios):")
        for what, v, limit, note in tg:
            verdict = "n/a" if v is None else ("met" if v <= limit else "not met")
            print(f"  {what:<52} {fmt_x(v):>7}  target <= {limit:.2f}x  {verdict} {note}".rstrip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated, from {DEFAULT_MODELS.replace(',', ', ')} (default: all)")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    ap.add_argument("--round-ms", type=float, default=100.0, help="time one peer runs in one round (calls are repeated to fill it)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up calls per peer")
    ap.add_argument("--gap-ms", type=float, default=20.0, help="sleep between peers inside a round")
    ap.add_argument("--threads", type=int, default=None, help="T for every runtime (default os.cpu_count())")
    ap.add_argument("--tune-trials", type=int, default=0, help="also build TVM tuned with this trial budget per model (cached in --work-dir)")
    ap.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True, help="symbolic-batch line for the encoder (default on)")
    ap.add_argument("--dynamic-model", default="encoder", help="model for the symbolic-batch line (encoder_sdpa is tried when its build fails; a partly compiled build is measured and said so)")
    ap.add_argument("--work-dir", default=os.path.join(ROOT, "bench-results", "peers"), help="exports, ONNX files, tuning databases")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH", help="write the results as JSON to PATH, or to stdout instead of the table")
    ap.add_argument("--no-install", action="store_true", help="do not pip-install onnxruntime/onnx when missing (its row fails instead)")
    args = ap.parse_args()

    threads = args.threads or os.cpu_count() or 1
    # Before torch and TVM start their pools.
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["TORCHTVM_NUM_THREADS"] = str(threads)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    sys.path.insert(0, os.path.join(ROOT, "native", "engine"))
    import torch

    torch.set_num_threads(threads)
    torch.backends.mha.set_fastpath_enabled(False)
    from peers_models import MODELS

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    os.makedirs(args.work_dir, exist_ok=True)

    # Engine, TVM and MetaSchedule logs go to stderr (some C++ logging writes to fd 1), so stdout
    # carries only the table or the JSON.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    load_start = loadavg()
    ort, onnx_ver, ort_err = ensure_onnxruntime(not args.no_install)
    if ort_err:
        log(f"ONNX Runtime unavailable: {ort_err}")
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import tvm

        versions["tvm"] = tvm.__version__
    except Exception as e:  # noqa: BLE001
        versions["tvm"] = f"unavailable ({short(e, 60)})"
    versions["onnxruntime"] = ort.__version__ if ort else "unavailable"
    versions["onnx"] = onnx_ver or "unavailable"
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS", "TVM_BIND_THREADS", "TVM_THREAD_POOL_SPIN_COUNT", "TORCHTVM_THREAD_POOL") if k in os.environ)

    results = {}
    for name in names:
        results[name] = bench_model(name, args, threads, ort, ort_err, torch)

    dynamic = None
    if args.dynamic:
        candidates = [args.dynamic_model] + (["encoder_sdpa"] if args.dynamic_model == "encoder" else [])
        notes = []
        for cand in candidates:
            try:
                dynamic = bench_dynamic(cand, args, threads, torch)
                dynamic["notes"] = notes
                break
            except Exception as e:  # noqa: BLE001
                reason = short(e)
                log(f"symbolic batch on {cand} failed: {reason}")
                notes.append(f"{cand} failed: {reason}")
                dynamic = {"model": cand, "error": reason, "notes": notes}
        else:
            dynamic["error"] = "; ".join(notes)
    else:
        dynamic = {"skipped": "--no-dynamic"}

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "versions": versions,
        "env": env,
        "rounds": args.rounds,
        "round_ms": args.round_ms,
        "warmup": args.warmup,
        "load_start": load_start,
        "load_end": loadavg(),
        "tune_trials": args.tune_trials,
    }
    sys.stdout.flush()
    os.dup2(saved_stdout, 1)
    os.close(saved_stdout)
    doc = {"meta": meta, "models": results, "symbolic_batch": dynamic,
           "targets": [{"what": w, "ratio": v, "target": t, "met": None if v is None else v <= t} for w, v, t, _ in targets(results, dynamic)]}
    if args.json and args.json != "-":
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        log(f"wrote {args.json}")
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    else:
        print_report(meta, results, dynamic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
