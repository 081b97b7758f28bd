#!/usr/bin/env python
"""TVM against the runtimes a user would otherwise pick, in one process, same threads, same inputs.

    npm run bench:peers -- [--models resnet18,encoder,...,unet] [--rounds 20] [--threads T]
                           [--tune-trials N] [--no-dynamic] [--isa avx2|avx512|native | --both-isas]
                           [--json [PATH]]
    (= .venv/bin/python scripts/bench_peers.py ...)
    npm run bench:peers -- --both-isas      # both tables: this CPU as it is, then capped at AVX2

Peers, each given the same eval-mode model (scripts/peers_models.py, random weights):
  TorchScript          torch.jit.trace
  TorchScript frozen   torch.jit.freeze + torch.jit.optimize_for_inference of that trace
  ONNX Runtime         torch.onnx.export (legacy TorchScript exporter, dynamo=False; the dynamo
                       exporter if that fails and onnxscript is installed), graph optimizations
                       ORT_ENABLE_ALL, intra_op_num_threads=T
  OpenVINO             openvino.convert_model(model, example_input=x) (the ONNX Runtime row's ONNX
                       file when direct conversion fails), core.compile_model on "CPU" with
                       INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY,
                       INFERENCE_NUM_THREADS=T; timed through one infer request made beforehand
                       (req.infer with shared input and output buffers)
  torch.compile        inductor with torch._inductor.config.freezing = True, under no_grad
  TVM untuned          the engine's compile (default pipeline), exported to a self-contained .pt
                       and loaded as a user would: torch.jit.load(path)(x)
  TVM tuned            the same after `--tune-trials N` MetaSchedule trials (total per model,
                       kept in --work-dir, so a rerun with the same N reuses them and does not
                       retune); skipped (and said so) without the flag
"Best peer", the denominator of the TVM ratios, is the fastest of ONNX Runtime, OpenVINO and
torch.compile (the TorchScript rows are the baseline, not the competition).

Models (scripts/peers_models.py, all written there, random weights with a fixed seed): resnet18,
encoder, encoder_sdpa, depthwise, lstm, audio (Conv1d + GroupNorm on a 1x1x16000 waveform),
mobilenetv3 (MobileNetV3-small: squeeze-excite, hardswish, 1x3x224x224), decoder (GPT-style,
2 blocks with causal F.scaled_dot_product_attention, int64 token ids 1x64: its input is random
ids in [0, 1000), declared to the engine as an int64 input) and unet (1x3x64x64).

Method: warm-ups, then a per-peer call count so one round of a peer lasts about --round-ms; then
--rounds interleaved rounds (each round runs every peer once, in an order rotated per round, with a
short sleep between peers so the previous peer's spinning thread pool parks). Every call is timed on
its own; p50/p90 are over all of a peer's calls in all rounds (on a shared, loaded machine a
preempted OpenMP thread makes a few calls 10-100x slower, which a per-round mean would absorb). Threads: torch.set_num_threads(T), TVM_NUM_THREADS=T (set before TVM
starts), ORT intra_op_num_threads=T, OpenVINO INFERENCE_NUM_THREADS=T; T defaults to
os.cpu_count(). Each peer's outputs are compared with eager PyTorch's; a mismatch is flagged in the
table. The summary table ends with the geometric means over the models that have both numbers of
TVM untuned / best peer and TVM untuned / TorchScript frozen (and of TVM tuned, when tuned).

ISA: --isa avx2|avx512 caps every runtime that can be capped at that ISA, as on a machine without
the newer instructions; the variables are set before torch is imported, since oneDNN, ATen and MKL
read theirs once per process: TORCHTVM_MAX_CPU_ISA (the engine: its runtime kernels and TVM's
target), ONEDNN_MAX_CPU_ISA (torch's oneDNN), ATEN_CPU_CAPABILITY (ATen's kernels, and the vector
ISA of torch.compile's C++ code), MKL_ENABLE_INSTRUCTIONS (torch's matrix products) and, at avx2,
TORCHINDUCTOR_CPP_MARCH=x86-64-v3 (what inductor's compiler may use). ONNX Runtime has no such
switch (MLAS picks its kernels from CPUID), nor has OpenVINO (ONEDNN_MAX_CPU_ISA caps only its
oneDNN primitives, not its own jit kernels or its MLAS GEMM: a mix that crashed on the audio net).
So, where the kernel lets CPUID fault (cpuid_fault in /proc/cpuinfo), the capped run re-executes
itself with CPUID masked for the whole process (torchtvm.common.isa_cap.masked_environment:
libtorchtvm_cpuid_mask.so preloaded), and every runtime in it, ONNX Runtime and OpenVINO included,
picks its code as on a CPU without the instructions above the cap; --no-cpuid-mask turns that off.
Without the mask both stay uncapped, and the header says so. ONEDNN_MAX_CPU_ISA is
unset while OpenVINO compiles, after torch's oneDNN has read it. --isa native (the default, unless
TORCHTVM_MAX_CPU_ISA is already set) removes those variables. --both-isas runs this script twice
in fresh processes, native then --isa avx2, with the other arguments, and prints both tables; with
--json PATH each run writes PATH with -native / -avx2 before the extension, with --json to stdout
one object {"native": ..., "avx2": ...}. Each table's header gives the CPU, the ISA in effect
(torchtvm.common.isa_cap.describe(): the cap, the runtime kernels' and torch's ISA; the ISA of
OpenVINO's kernels as its compiled models report them), threads and the load average. Capped
runs keep their files in --work-dir/isa-<cap>, apart from the native ones.

Every peer is built in a try block: one that fails (export, convert, compile, import) is printed as
failed with the reason, and the table still prints. ONNX Runtime, onnx and OpenVINO come from
scripts/bench_requirements.txt, pip-installed into this Python in one step the first time any is
missing (--no-install to refuse). The encoder's multi-head attention runs with torch's MHA fast path off
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
PEERS = ["TorchScript", "TorchScript frozen", "ONNX Runtime", "OpenVINO", "torch.compile"]
BEST_OF = ["ONNX Runtime", "OpenVINO", "torch.compile"]  # "best peer": the fastest of these
TVM_ROWS = ["TVM untuned", "TVM tuned"]
ROWS = PEERS + TVM_ROWS
DEFAULT_MODELS = "resnet18,encoder,encoder_sdpa,depthwise,lstm,audio,mobilenetv3,decoder,unet"


def log(msg: str) -> None:
    print(f"[bench:peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def short(e: BaseException, limit: int = 200) -> str:
    """One line naming what failed: the last meaningful line of the message."""
    text = str(e).strip()
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith(("File ", "^", "~", "#"))]
    for l in lines:
        if "does not support" in l or "Error" in l or "error" in l:
            return f"{type(e).__name__}: {l.split('[tensor(')[0]}"[:limit]
    if len(lines) > 1:  # e.g. TVM's "cannot emit this operator ... / Offending call: / <the call>": what and where
        head = f"{type(e).__name__}: {lines[0]}"
        head = head if len(head) <= limit // 2 else head[: limit // 2 - 3] + "..."
        return f"{head} | {lines[-1]}"[:limit]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:limit]


# ---- setup --------------------------------------------------------------------------------------
# ISA caps: what --isa sets before torch is imported (see the module docstring). The engine's own
# TORCHTVM_MAX_CPU_ISA sets the oneDNN and ATen ones at `import torchtvm` too; here they are set
# explicitly, and before torch, for every peer in the process.
ISA_ENV = {
    "avx2": {"TORCHTVM_MAX_CPU_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "TORCHINDUCTOR_CPP_MARCH": "x86-64-v3"},
    "avx512": {"TORCHTVM_MAX_CPU_ISA": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_FP16", "ATEN_CPU_CAPABILITY": "avx512",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
ISA_VARS = sorted({k for env in ISA_ENV.values() for k in env})
OV_UNCAPPED = ("OpenVINO is NOT capped: it has no ISA switch. Its CPU plugin's oneDNN copy reads ONEDNN_MAX_CPU_ISA, but its own jit kernels "
               "(MVN, Reduce, Pooling) and its MLAS GEMM do not, and that mix crashed (SIGSEGV) on the audio net with openvino 2026.4.1, so the "
               "variable is unset while OpenVINO compiles")
# Set in the re-executed, CPUID-masked run, so that a mask that fails to take effect is reported
# instead of re-executing again.
MASK_MARK = "TORCHTVM_BENCH_CPUID_MASKED"


def apply_isa(isa: str) -> None:
    """Sets (or, for native, removes) the cap variables; call before torch, TVM or OpenVINO load."""
    for k in ISA_VARS:
        os.environ.pop(k, None)
    os.environ.update(ISA_ENV.get(isa, {}))


def ensure_peer_packages(allow_install: bool) -> dict:
    """{"onnxruntime": module, "onnx": version, "openvino": module, "errors": {peer: reason}}; a
    missing one is None with its reason. When any is missing, pip-installs the pinned wheels of
    scripts/bench_requirements.txt (all of them, one step) into this Python, once."""

    def attempt() -> dict:
        got: dict = {"onnxruntime": None, "onnx": None, "openvino": None, "errors": {}}
        try:
            import onnx
            import onnxruntime

            got["onnxruntime"], got["onnx"] = onnxruntime, onnx.__version__
        except ImportError as e:
            got["errors"]["onnxruntime"] = str(e)
        try:
            import openvino

            got["openvino"] = openvino
        except ImportError as e:
            got["errors"]["openvino"] = str(e)
        return got

    got = attempt()
    if not got["errors"]:
        return got
    missing = "; ".join(got["errors"].values())
    if not allow_install:
        fix = f"run: {sys.executable} -m pip install -r {os.path.relpath(REQUIREMENTS, os.getcwd())}"
        got["errors"] = {k: f"not installed ({e}); {fix}" for k, e in got["errors"].items()}
        return got
    log(f"not importable ({missing}); installing the pinned wheels from {os.path.relpath(REQUIREMENTS, ROOT)} into {sys.prefix}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", REQUIREMENTS], capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()
        reason = f"pip install -r {os.path.basename(REQUIREMENTS)} failed: {tail[-1] if tail else r.returncode}"
        got["errors"] = {k: reason for k in got["errors"]}
        return got
    log(f"installed in {time.perf_counter() - t0:.0f} s")
    importlib.invalidate_caches()
    got = attempt()
    got["errors"] = {k: f"installed but not importable: {e}" for k, e in got["errors"].items()}
    return got


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


def build_tvm(torch, ts_path: str, dims, out_dir: str, threads: int, trials: int = 0, work_dir: str | None = None,
              dtype: str = "float32", value_range: tuple[int, int] | None = None) -> tuple[str, dict]:
    """Compile (or tune and compile) with the engine and export the deployable .pt; returns its path."""
    from torchtvm.common.progress import JobContext

    export_path = os.path.join(out_dir, "model_tvm.pt")
    inputs = [{"name": "x", "dims": dims, "dtype": dtype}]
    if value_range is not None:  # integer ids: the engine's own checks draw from [low, high)
        inputs[0]["range"] = list(value_range)
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


def ov_kernel_isa(compiled) -> dict[str, int]:
    """ISA of the kernels in an OpenVINO compiled model, from its runtime graph's primitive types
    (e.g. brgconv_avx2_f32, jit_avx512_f32): {isa: node count}."""
    count: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "primitiveType" not in info:
            continue
        prim = str(info["primitiveType"].astype(str)).lower()
        for isa in ("amx", "avx512", "avx2", "sse41", "mlas"):  # mlas: its own GEMM, ISA from CPUID
            if isa in prim:
                count[isa] = count.get(isa, 0) + 1
                break
    return count


def build_openvino(ov, torch, model, x, onnx_path: str, threads: int):
    """(call, note, kernel ISA counts): convert (from the torch module, else the ONNX file), compile
    for the CPU, and run through one infer request created here."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ov_model = ov.convert_model(model, example_input=x)
        note = "converted from the torch module"
    except Exception as direct:
        if not os.path.exists(onnx_path):
            raise RuntimeError(f"convert_model failed ({short(direct, 120)}) and there is no ONNX file to fall back on (the ONNX Runtime row's export failed)") from direct
        ov_model = ov.convert_model(onnx_path)
        note = f"from the ONNX file (convert_model on the module failed: {short(direct, 80)})"
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {
        hints.inference_precision: "f32",
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.inference_num_threads: threads,
    }
    compiled = ov.Core().compile_model(ov_model, "CPU", config)
    req = compiled.create_infer_request()
    feed = {0: x.numpy()}

    def call():
        # Shared buffers: the input is read in place, the outputs are views of the request's own
        # tensors (valid until the next call), as ORT's and the torch peers' are fresh each call.
        return req.infer(feed, share_inputs=True, share_outputs=True).to_tuple()

    call()  # some nodes (FullyConnected) pick their kernel at the first inference
    return call, note, ov_kernel_isa(compiled)


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


def bench_model(name: str, args, threads: int, pkgs: dict, torch) -> dict:
    from peers_models import MODELS, input_dtype, make_input

    factory, shape, label, n_out = MODELS[name][:4]
    dtype, value_range = input_dtype(name)
    log(f"{name}: {label}")
    work = os.path.join(args.work_dir, name)
    os.makedirs(work, exist_ok=True)
    model = factory()
    x = make_input(name)  # torch.manual_seed(1); torch.randn(*shape) for float inputs
    ort, ov = pkgs["onnxruntime"], pkgs["openvino"]
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

    onnx_path = os.path.join(work, "model.onnx")
    if os.path.exists(onnx_path):
        os.remove(onnx_path)  # a stale file from an earlier run is not this run's export

    def onnxruntime():
        if ort is None:
            raise RuntimeError(f"onnxruntime unavailable: {pkgs['errors'].get('onnxruntime')}")
        path = onnx_path
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

    def openvino():
        if ov is None:
            raise RuntimeError(f"openvino unavailable: {pkgs['errors'].get('openvino')}")
        # Under --isa, OpenVINO is capped by the CPUID mask only (without it, uncapped: see
        # OV_UNCAPPED): its oneDNN copy reads ONEDNN_MAX_CPU_ISA once, at its first use, which is
        # in here (torch's read it at startup), and that variable alone capped a part of it.
        saved = os.environ.pop("ONEDNN_MAX_CPU_ISA", None)
        try:
            call, note, isa = build_openvino(ov, torch, model, x, onnx_path, threads)
        finally:
            if saved is not None:
                os.environ["ONEDNN_MAX_CPU_ISA"] = saved
        rows["OpenVINO"].note = f"{note}; kernels " + ", ".join(f"{k} x{v}" for k, v in sorted(isa.items(), key=lambda kv: -kv[1]))
        rows["OpenVINO"].engine = {"kernel_isa": isa}
        return call

    setup(rows["OpenVINO"], openvino)

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
            path, res = build_tvm(torch, ts_path, list(shape), out, threads, trials, os.path.join(work, "tuning"), dtype, value_range)
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

    peer_p50 = {n: rows[n].p(0.5) for n in BEST_OF if rows[n].p(0.5) is not None}
    best = min(peer_p50, key=peer_p50.get) if peer_p50 else None
    ts, frozen_ts = rows["TorchScript"].p(0.5), rows["TorchScript frozen"].p(0.5)
    out = {"label": label, "input_shape": list(shape), "input_dtype": dtype, "best_peer": best, "rows": {}}
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
            "vs_torchscript_frozen": p50 / frozen_ts if p50 is not None and frozen_ts else None,
        }
    return out


def bench_dynamic(model_name: str, args, threads: int, torch) -> dict:
    """Symbolic batch 1..32 module vs static modules at 1, 8, 32 (exported .pt, as a user runs it)."""
    from peers_models import MODELS, input_dtype, make_input

    factory, shape, label = MODELS[model_name][:3]
    dtype, value_range = input_dtype(model_name)
    batches = [1, 8, 32]
    work = os.path.join(args.work_dir, f"dynamic-{model_name}")
    os.makedirs(work, exist_ok=True)
    model = factory()
    rest = list(shape[1:])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (make_input(model_name, [4, *rest]),))
    ts_path = os.path.join(work, "model.pt")
    torch.jit.save(traced, ts_path)
    log(f"symbolic batch: {model_name}, batch 1..{max(batches)} vs static {batches}")
    t0 = time.perf_counter()
    sym_dims = [{"name": "batch", "min": 1, "max": max(batches)}] + rest
    sym_path, res = build_tvm(torch, ts_path, sym_dims, os.path.join(work, "symbolic"), threads, dtype=dtype, value_range=value_range)
    log(f"  symbolic module built in {time.perf_counter() - t0:.1f} s")
    note, _ = engine_note(res)
    result = {"model": model_name, "label": label, "range": [1, max(batches)], "batches": {}, "engine_note": note or None}
    for b in batches:
        static_path, _ = build_tvm(torch, ts_path, [b] + rest, os.path.join(work, f"static-{b}"), threads, dtype=dtype, value_range=value_range)
        x = make_input(model_name, [b, *rest], seed=b)
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
    """The targets the product answers to (issue 21, same-run ratios): untuned never slower than
    TorchScript frozen on any model, untuned geomean over the best peer <= 1.0, tuned <= 0.9x the
    best peer on ResNet-18 and the depthwise net; and the symbolic batch within 1.15x of static."""
    out = []
    for model, m in results.items():
        out.append((f"{model}: TVM untuned / TorchScript frozen", m["rows"]["TVM untuned"]["vs_torchscript_frozen"], 1.0, ""))
    g = next((g for g in geomeans(results) if g["what"] == "TVM untuned / best peer"), None)
    if g and len(results) > 1:
        missing = f"(without {', '.join(g['without'])})" if g["without"] else ""
        out.append((f"geomean over {len(g['models'])} models: TVM untuned / best peer", g["geomean"], 1.0, missing))
    for model in ("resnet18", "depthwise"):
        if model in results:
            row = results[model]["rows"]["TVM tuned"]
            out.append((f"{model}: TVM tuned / best peer", row["vs_best_peer"], 0.9, "" if row["p50_ms"] else "(not tuned in this run: --tune-trials N)"))
    if dynamic and dynamic.get("batches"):
        for b, d in dynamic["batches"].items():
            out.append((f"{dynamic['model']}: symbolic 1..32 / static, batch {b}", d["ratio"], 1.15, ""))
    return out


def geomeans(results: dict) -> list[dict]:
    """Geometric means over the models that have both numbers: TVM untuned (and tuned, when any
    model has a tuned time) over the best peer and over TorchScript frozen."""
    out = []
    tvm_rows = ["TVM untuned"] + (["TVM tuned"] if any(m["rows"]["TVM tuned"]["p50_ms"] for m in results.values()) else [])
    for tvm in tvm_rows:
        for key, peer in (("vs_best_peer", "best peer"), ("vs_torchscript_frozen", "TorchScript frozen")):
            have = {n: m["rows"][tvm][key] for n, m in results.items() if m["rows"][tvm][key]}
            out.append({
                "what": f"{tvm} / {peer}",
                "geomean": statistics.geometric_mean(have.values()) if have else None,
                "models": sorted(have),
                "without": [n for n in results if n not in have],
            })
    return out


def isa_header(meta: dict) -> list[str]:
    """The ISA lines of the header: the cap, what each runtime runs under it."""
    d, cap = meta["isa_in_effect"], meta["isa"]
    ov = meta.get("openvino_kernels") or {}
    ov_text = ", ".join(f"{k} x{v}" for k, v in sorted(ov.items(), key=lambda kv: -kv[1])) or "n/a (no OpenVINO model compiled)"
    if "error" in d:
        kernels = f"isa_cap.describe() failed: {d['error']}"
    else:
        kernels = f"TVM runtime kernels {d.get('runtime_kernels') or 'n/a'}, torch (ATen) {d.get('torch')}"
    if cap == "native":
        return [f"ISA: native, no cap ({kernels}; OpenVINO kernels {ov_text}; ONNX Runtime picks its kernels from CPUID)"]
    env = ", ".join(f"{k}={v}" for k, v in meta["isa_env"].items())
    mattr = ",".join(d.get("tvm_mattr") or []) or "none"
    lines = [
        f"ISA: capped at {cap} (--isa {cap}; the engine's cap: {d.get('cap')}): {kernels}; TVM target mattr {mattr}",
        f"  set before torch was imported: {env} (TorchScript, torch.compile and the TVM rows run under it)",
    ]
    mask = meta.get("cpuid_mask")
    if mask:
        return lines + [
            (f"  CPUID masked at {mask['level']} for the whole process (libtorchtvm_cpuid_mask.so; {mask['cpuid_answered']} CPUID instructions answered): "
             f"ONNX Runtime (MLAS) and OpenVINO pick their kernels as on a CPU without the instructions above the cap (OpenVINO's kernels here: {ov_text})"),
        ]
    return lines + [
        f"  CPUID not masked ({meta.get('cpuid_mask_unavailable') or 'unknown'})",
        "  ONNX Runtime is NOT capped: it has no ISA switch (MLAS picks its kernels from CPUID), so its row may use instructions above the cap",
        f"  {OV_UNCAPPED} (its kernels here: {ov_text})",
    ]


def print_report(meta: dict, results: dict, dynamic: dict | None) -> None:
    print()
    print(f"bench:peers  {meta['date']}  ISA {meta['isa']}")
    print(f"CPU: {meta['cpu']}, {meta['cpu_count']} logical CPU(s); threads T={meta['threads']} (torch.set_num_threads, TVM_NUM_THREADS, ORT intra_op, OpenVINO INFERENCE_NUM_THREADS)")
    for line in isa_header(meta):
        print(line)
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

    tg = targets(results, dynamic)
    if tg:
        print("\ntargets (same-run ratios; the tuned ones mean tuning within 20 minutes, see the tuned rows' notes):")
        for what, v, limit, note in tg:
            verdict = "n/a" if v is None else ("met" if v <= limit else "not met")
            print(f"  {what:<56} {fmt_x(v):>7}  target <= {limit:.2f}x  {verdict} {note}".rstrip())

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
            if r["mismatch"]:
                cells[-1] += " MISMATCH"
        print(f"| {m['label']} | " + " | ".join(cells) + " |")

    # The table ends with the geometric means (best peer: the fastest of BEST_OF).
    print()
    for g in geomeans(results):
        missing = f"; without {', '.join(g['without'])} (a number missing)" if g["without"] else ""
        print(f"geomean {g['what']}: {fmt_x(g['geomean'])} over {len(g['models'])} of {len(results)} model(s){missing}")


def forwarded_args(argv: list[str]) -> list[str]:
    """The command line without --both-isas, --isa and --json (each run gets its own)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--both-isas" or a.startswith(("--isa=", "--json=")):
            continue
        if a == "--isa":
            i += 1
        elif a == "--json":
            if i < len(argv) and (argv[i] == "-" or not argv[i].startswith("-")):
                i += 1
        else:
            out.append(a)
    return out


def run_both_isas(args) -> int:
    """This script twice, in fresh processes (oneDNN, ATen and MKL read their caps once): native,
    then --isa avx2; the tables one after the other."""
    rest, docs, rc = forwarded_args(sys.argv[1:]), {}, 0
    for isa in ("native", "avx2"):
        cmd = [sys.executable, os.path.abspath(__file__), *rest, "--isa", isa]
        if args.json and args.json != "-":
            stem, ext = os.path.splitext(args.json)
            cmd += ["--json", f"{stem}-{isa}{ext or '.json'}"]
        elif args.json == "-":
            cmd += ["--json", "-"]
        log(f"--both-isas: {isa}: {' '.join(cmd[1:])}")
        sys.stdout.flush()
        r = subprocess.run(cmd, stdout=subprocess.PIPE if args.json == "-" else None, text=True)
        rc = max(rc, r.returncode)
        if args.json == "-":
            try:
                docs[isa] = json.loads(r.stdout)
            except ValueError:
                docs[isa] = {"error": f"the {isa} run printed no JSON (exit {r.returncode})"}
        elif r.returncode != 0:
            print(f"\nbench:peers --isa {isa}: FAILED (exit {r.returncode}); its log is above on stderr", flush=True)
    if args.json == "-":
        print(json.dumps(docs, indent=2))
    return rc


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
    ap.add_argument("--no-install", action="store_true", help="do not pip-install onnxruntime/onnx/openvino when missing (their rows fail instead)")
    ap.add_argument("--isa", choices=["native", *ISA_ENV], default=None,
                    help="cap the ISA of every runtime (ONNX Runtime and OpenVINO by masking CPUID, see --cpuid-mask); default native, or TORCHTVM_MAX_CPU_ISA when that is set")
    ap.add_argument("--both-isas", action="store_true", help="run twice in fresh processes, native then --isa avx2, and print both tables")
    ap.add_argument("--cpuid-mask", action=argparse.BooleanOptionalAction, default=True,
                    help="under --isa, mask CPUID for the whole process where the kernel allows it, so ONNX Runtime and OpenVINO are capped too (default on)")
    args = ap.parse_args()
    if args.both_isas:
        if args.isa:
            ap.error("--both-isas runs native and then avx2; leave out --isa")
        return run_both_isas(args)
    isa = args.isa or (os.environ.get("TORCHTVM_MAX_CPU_ISA", "").strip().lower() or "native")
    if isa not in ("native", *ISA_ENV):
        ap.error(f"TORCHTVM_MAX_CPU_ISA={os.environ['TORCHTVM_MAX_CPU_ISA']!r} is not one of {', '.join(ISA_ENV)}; unset it or pass --isa")
    # Before torch (and TVM, OpenVINO) load: oneDNN, ATen and MKL read their caps once per process.
    apply_isa(isa)
    sys.path.insert(0, os.path.join(ROOT, "native", "engine"))
    from torchtvm.common import isa_cap  # (imports torchtvm, which applies the engine's cap to this process, as a user's import does)

    mask_unavailable = "--no-cpuid-mask" if not args.cpuid_mask else isa_cap.cpuid_mask_unavailable()
    if isa != "native":
        args.work_dir = os.path.join(args.work_dir, f"isa-{isa}")
        if mask_unavailable is None and isa_cap.cpuid_mask_in_effect() is None:
            if os.environ.get(MASK_MARK):
                mask_unavailable = "the preloaded mask did not take effect"
            else:
                sys.stdout.flush()
                sys.stderr.flush()
                os.execve(sys.executable, [sys.executable, *sys.argv], {**isa_cap.masked_environment(isa), MASK_MARK: "1"})

    threads = args.threads or os.cpu_count() or 1
    # Before torch and TVM start their pools.
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["TORCHTVM_NUM_THREADS"] = str(threads)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import torch

    torch.set_num_threads(threads)
    torch.backends.mha.set_fastpath_enabled(False)
    if isa != "native":
        # torch's oneDNN reads ONEDNN_MAX_CPU_ISA at its first primitive: make that now, while the
        # cap is set (the OpenVINO row unsets it while it compiles; see OV_UNCAPPED).
        with torch.no_grad():
            torch.nn.functional.conv2d(torch.zeros(1, 16, 8, 8), torch.zeros(16, 1, 3, 3), groups=16)
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
    pkgs = ensure_peer_packages(not args.no_install)
    for peer, err in pkgs["errors"].items():
        log(f"{peer} unavailable: {err}")
    isa_in_effect: dict = {}
    try:
        isa_in_effect = dict(isa_cap.describe(), tvm_mattr=isa_cap.target_mattr())
    except Exception as e:  # noqa: BLE001
        isa_in_effect = {"error": short(e, 120)}
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import tvm

        versions["tvm"] = tvm.__version__
    except Exception as e:  # noqa: BLE001
        versions["tvm"] = f"unavailable ({short(e, 60)})"
    versions["onnxruntime"] = pkgs["onnxruntime"].__version__ if pkgs["onnxruntime"] else "unavailable"
    versions["onnx"] = pkgs["onnx"] or "unavailable"
    versions["openvino"] = pkgs["openvino"].__version__.split("-")[0] if pkgs["openvino"] else "unavailable"
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS", "TVM_BIND_THREADS", "TVM_THREAD_POOL_SPIN_COUNT", "TORCHTVM_THREAD_POOL") if k in os.environ)

    results = {}
    for name in names:
        results[name] = bench_model(name, args, threads, pkgs, torch)

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

    ov_kernels: dict[str, int] = {}
    for m in results.values():
        for k, v in ((m["rows"]["OpenVINO"].get("engine") or {}).get("kernel_isa") or {}).items():
            ov_kernels[k] = ov_kernels.get(k, 0) + v
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
        "isa": isa,
        "isa_env": {k: os.environ[k] for k in ISA_VARS if k in os.environ},
        "isa_in_effect": isa_in_effect,
        "cpuid_mask": isa_cap.cpuid_mask_in_effect(),
        "cpuid_mask_unavailable": mask_unavailable,
        "openvino_kernels": ov_kernels,
    }
    sys.stdout.flush()
    os.dup2(saved_stdout, 1)
    os.close(saved_stdout)
    doc = {"meta": meta, "models": results, "symbolic_batch": dynamic, "geomeans": geomeans(results),
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
