"""`torchtvm rpc-server`: TVM's RPC server (tvm.rpc.server) registered with a tracker under a key,
with libtorchtvm_runtime.so loaded so that library-kernel calls in uploaded modules resolve there.

The server runs in this process (TVM's listen loop in a thread; every session is a forked child, as
TVM's own server does), so stopping this process's group stops everything it started. Before
listening it registers the global functions that the workbench calls through a session:
`torchtvm.remote.cpu_info` (a JSON object: name, CPU model, LLVM CPU name, triple, checked
features, cores), `torchtvm.remote.server_name`, `torchtvm.remote.bench` (time an uploaded model)
and `torchtvm.remote.run_outputs` (run an uploaded model on uploaded inputs: the verification, on
this CPU, of a build made on a machine without it; remote/verify.py).

TVM's RPC protocol has no authentication: whoever reaches the port can upload and run any code.
So the server binds to 127.0.0.1 unless `--host` asks for another address, and then warns.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import multiprocessing
import os
import platform
import signal
import socket
import struct
import sys
import time

_INFO: dict = {}

NO_AUTH_WARNING = (
    "TVM's RPC protocol has no authentication: anyone who can reach {addr} can upload and run code "
    "on this machine as this user. Bind to another address than 127.0.0.1 only on a network you trust."
)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_report(name: str) -> dict:
    """This machine's CPU as a build for it needs it: LLVM's name for it and the features that the
    workbench checks (cpu_features.X86_FEATURES) that /proc/cpuinfo reports.

    TORCHTVM_RPC_REPORT_FEATURES (a comma-separated list) replaces the features reported: for
    tests, which start two servers on one machine and need them to disagree."""
    from tvm.target import codegen

    from torchtvm.common import cpu_features

    flags = cpu_features.host_flags()
    features = sorted(f for f, flag in cpu_features.X86_FEATURES.items() if flag in flags)
    forced = os.environ.get("TORCHTVM_RPC_REPORT_FEATURES")
    if forced is not None:
        features = sorted(f for f in forced.split(",") if f)
    try:
        triple = str(codegen.llvm_get_system_triple())
    except Exception:
        triple = ""
    return {
        "name": name,
        "cpu_model": _cpu_model(),
        "llvm_cpu": str(codegen.llvm_get_system_cpu()),
        "triple": triple,
        "arch": platform.machine(),
        "features": features,
        "cores": os.cpu_count() or 1,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }


def _register(info: dict) -> None:
    import tvm_ffi

    text = json.dumps(info)

    @tvm_ffi.register_global_func("torchtvm.remote.cpu_info", override=True)
    def _cpu_info():
        return text

    @tvm_ffi.register_global_func("torchtvm.remote.server_name", override=True)
    def _server_name():
        return info["name"]

    @tvm_ffi.register_global_func("torchtvm.remote.bench", override=True)
    def _bench(file_name, options):
        # The file was uploaded into this session's work dir (tvm.rpc.server.workpath).
        path = tvm_ffi.get_global_func("tvm.rpc.server.workpath")(str(file_name))
        out = bench_file(path, json.loads(str(options)))
        out["measured_on"] = {k: info.get(k) for k in ("name", "cpu_model", "llvm_cpu", "hostname", "cores")}
        return json.dumps(out)

    @tvm_ffi.register_global_func("torchtvm.remote.run_outputs", override=True)
    def _run_outputs(model_name, inputs_name):
        # Both files were uploaded into this session's work dir; the outputs are written there and
        # named in the reply, for the client to download (remote/verify.py).
        workpath = tvm_ffi.get_global_func("tvm.rpc.server.workpath")
        out_name = f"{inputs_name}.out"
        run_outputs(workpath(str(model_name)), workpath(str(inputs_name)), workpath(out_name))
        return out_name


_LOADED: dict[str, object] = {}


def _flatten(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten(o)]
    raise ValueError(f"the model returned a {type(out).__name__}; only tensors, lists and tuples of tensors are supported")


def _caller(m, meta: dict | None):
    """How to call an export on a list of tensors: its calling convention (deploy/export.py)
    "model" takes the model's own arguments, "list" (the seed API's, and exports older than the
    key) one list of tensors; a model the workbench did not export, its own arguments."""
    listed = meta is not None and meta.get("compiled") != "partial" and meta.get("calling_convention", "list") == "list"
    return (lambda xs: m(xs)) if listed else (lambda xs: m(*xs))


def run_outputs(model_path: str, inputs_path: str, out_path: str) -> None:
    """Run an uploaded model on uploaded inputs (a torch.save'd list of tensors) and torch.save its
    outputs, flattened to a list, to `out_path`: what a verification on this server needs (the
    inputs and PyTorch's reference outputs are made and compared by the client)."""
    import torch

    from torchtvm.common.runtime_library import exported_metadata

    m = _LOADED.get(model_path)
    if m is None:  # loaded once per session: verification runs the model at several size sets
        m = _LOADED[model_path] = torch.jit.load(model_path, map_location="cpu")
    xs = torch.load(inputs_path, weights_only=True)
    with torch.no_grad():
        outs = _flatten(_caller(m, exported_metadata(m))(list(xs)))
    torch.save([t.detach().contiguous() for t in outs], out_path)


def bench_file(path: str, options: dict) -> dict:
    """Time a TorchScript model (an export of the workbench or any other) here: warm-up, then
    `iterations` timed calls on random inputs that follow its specs; p50/p90/p99 in ms."""
    import torch

    from torchtvm.common.runtime_library import exported_metadata
    from torchtvm.common.specs import parse_specs, random_inputs

    if options.get("threads"):
        torch.set_num_threads(int(options["threads"]))
    m = torch.jit.load(path, map_location="cpu")
    meta = exported_metadata(m)
    raw = options.get("inputs") or (meta or {}).get("inputs")
    if not raw:
        raise ValueError("the model's inputs are unknown: pass --input NAME:DIMS:DTYPE for a model the workbench did not export")
    xs = random_inputs(parse_specs(raw))
    run = _caller(m, meta)

    def call():
        return run(xs)
    warmup, iterations = int(options.get("warmup", 10)), int(options.get("iterations", 100))
    with torch.no_grad():
        for _ in range(warmup):
            call()
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter_ns()
            call()
            times.append((time.perf_counter_ns() - t0) / 1e6)
    times.sort()

    def pct(q: float) -> float:
        return times[min(len(times) - 1, int(round(q * (len(times) - 1))))]

    return {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "mean": sum(times) / len(times), "min": times[0], "max": times[-1],
            "runs": len(times), "warmup": warmup, "threads": torch.get_num_threads(), "inputs": raw}


def _load_runtime() -> str | None:
    """Load libtorchtvm_runtime.so (torch's custom class and the library kernels it registers with
    tvm-ffi); returns a sentence when it is missing."""
    from torchtvm.common import runtime_library

    try:
        if runtime_library.load_library():
            return None
    except Exception as e:  # a library built against another torch
        return f"The runtime library {runtime_library.library_path()} could not be loaded ({e}); modules that call library kernels will fail here."
    return f"The runtime library {runtime_library.library_path()} is not built; modules that call library kernels will fail here."


def _check_tracker(host: str, port: int, timeout: float = 5.0) -> None:
    from tvm.rpc import base

    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = s.recv(4)
    except OSError as e:
        raise SystemExit(f"torchtvm rpc-server: no RPC tracker answers at {host}:{port} ({e.strerror or e}). Start one (python -m tvm.exec.rpc_tracker --host {host} --port {port}) or pass the right --tracker HOST:PORT.") from None
    if int.from_bytes(magic, "little", signed=True) != base.RPC_TRACKER_MAGIC:
        raise SystemExit(f"torchtvm rpc-server: {host}:{port} is not a TVM RPC tracker.")


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SystemExit(f"torchtvm rpc-server: {what} must be HOST:PORT, not {text!r}.")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="torchtvm rpc-server", description=__doc__)
    p.add_argument("--tracker", required=True, help="the tracker's HOST:PORT")
    p.add_argument("--key", required=True, help="the queue this server joins (servers of one key must have one CPU)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1; another one is reachable by anyone on that network: no authentication)")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--port-end", type=int, default=None, help="the first port past the range to try (default PORT+100)")
    p.add_argument("--name", default=None, help="how the workbench names this server (default HOSTNAME:PORT)")
    p.add_argument("--custom-addr", default=None, help="the address the tracker hands to clients (default: the one it sees)")
    args = p.parse_args(argv)

    if not args.key or any(c.isspace() for c in args.key) or ":" in args.key:
        raise SystemExit("torchtvm rpc-server: --key must be a word without spaces or colons.")
    tracker = parse_address(args.tracker, "--tracker")
    if not is_loopback(args.host):
        print("torchtvm rpc-server: warning: " + NO_AUTH_WARNING.format(addr=f"{args.host}:{args.port}..{args.port_end or args.port + 100}"), file=sys.stderr, flush=True)
    if not is_loopback(tracker[0]) and is_loopback(args.host):
        print(f"torchtvm rpc-server: warning: the tracker {args.tracker} is not on this machine, but this server listens on 127.0.0.1 only: "
              "clients elsewhere cannot reach it (pass --host to listen on another address).", file=sys.stderr, flush=True)
    _check_tracker(*tracker)

    runtime_note = _load_runtime()
    if runtime_note:
        print("torchtvm rpc-server: warning: " + runtime_note, file=sys.stderr, flush=True)

    from tvm.rpc import server as tvm_server

    # TVM's listen loop logs every session at INFO; keep warnings only unless asked.
    if not os.environ.get("TORCHTVM_RPC_VERBOSE"):
        tvm_server.logger.setLevel("WARNING")
    port_end = args.port_end or args.port + 100
    try:
        state = tvm_server.PopenRPCServerState(args.host, args.port, port_end, False, tracker, args.key, None, args.custom_addr, False)
    except (OSError, ValueError) as e:
        raise SystemExit(f"torchtvm rpc-server: cannot listen on {args.host} at a port in {args.port}..{port_end - 1}: {e}.") from None
    tvm_server.PopenRPCServerState.current = state
    name = args.name or f"{socket.gethostname()}:{state.port}"
    info = cpu_report(name)
    info.update(key=args.key, host=args.host, port=state.port, runtime_library=runtime_note is None)
    _INFO.update(info)
    # Registered in this process before any session starts: each session is a fork of it.
    _register(info)

    def stop(signum, _frame):
        for child in multiprocessing.active_children():
            child.kill()
        os._exit(0 if signum in (signal.SIGTERM, signal.SIGINT) else 1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"event": "listening", **info}), flush=True)
    while state.thread.is_alive():
        state.thread.join(1.0)
    return 1


if __name__ == "__main__":
    # The sessions are forked children: keep them in this process group.
    sys.exit(main())
