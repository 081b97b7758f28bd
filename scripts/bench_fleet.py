"""`npm run bench:fleet`: a tune over TVM's RPC tracker with one measuring server, then with two,
all on 127.0.0.1 (a tracker and `torchtvm rpc-server`s started here, every process stopped at the
end). Prints the trials each server measured and the wall time of each tune, and the ratio.

On one machine the servers share its cores with the builder processes and each other, so two
loopback servers show the plumbing (trials spread, records kept per machine), not the speed-up of
two real machines: that needs servers on other hosts (`torchtvm rpc-server --host`).

    .venv/bin/python scripts/bench_fleet.py [--model assets/models/resnet18.pt] [--input x:1,3,224,224:float32]
        [--trials 32] [--servers 1,2] [--trials-per-iter 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, "native", "engine")
sys.path.insert(0, ENGINE)

from torchtvm.common.errors import EngineError
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import tune_model
from torchtvm.remote import fleet as fleet_mod


def log(msg: str) -> None:
    print(f"[bench:fleet {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """The processes this script started, each in its own process group, all killed at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": ENGINE + os.pathsep + os.environ.get("PYTHONPATH", "")}
        p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)


def start_tracker(procs: Procs) -> str:
    port = free_port()
    procs.start(["-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)])
    addr = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            fleet_mod.queues(addr)
            return addr
        except EngineError:
            if time.time() > deadline:
                raise SystemExit("the tracker did not start")
            time.sleep(0.5)


def start_server(procs: Procs, tracker: str, key: str, name: str) -> None:
    port = free_port()
    p = procs.start(["-m", "torchtvm.remote.server", "--tracker", tracker, "--key", key, "--port", str(port), "--port-end", str(port + 1), "--name", name])
    line: list[str] = []
    t = threading.Thread(target=lambda: line.append(p.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    t.start()
    t.join(180)
    if not line or not line[0].startswith("{"):
        raise SystemExit(f"server {name} did not start: {line}")
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()  # type: ignore[union-attr]


def wait_servers(tracker: str, key: str, n: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        row = next((q for q in fleet_mod.queues(tracker)["keys"] if q["key"] == key), None)
        if row and row["servers"] >= n and row["free"] >= n:
            return
        time.sleep(0.5)
    raise SystemExit(f"{n} server(s) of {key} did not register with {tracker}")


def input_spec(text: str) -> dict:
    """NAME:DIMS:DTYPE with numeric dims (a tune is at one size) -> the engine's input spec."""
    try:
        name, dims, dtype = text.split(":")
        return {"name": name, "dims": [int(d) for d in dims.split(",")], "dtype": dtype}
    except ValueError:
        raise SystemExit(f"--input takes NAME:DIMS:DTYPE with numbers for dims, e.g. x:1,3,224,224:float32, not {text!r}") from None


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench:fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "models", "resnet18.pt"))
    ap.add_argument("--input", action="append", default=None, help="NAME:DIMS:DTYPE (default x:1,3,224,224:float32)")
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--trials-per-iter", type=int, default=4)
    ap.add_argument("--servers", default="1,2", help="the fleet sizes to tune with, in order (default 1,2)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.disable(logging.INFO)  # MetaSchedule's per-round task tables: the table below is the output
    inputs = [input_spec(t) for t in (a.input or ["x:1,3,224,224:float32"])]
    sizes = [int(n) for n in a.servers.split(",")]
    procs = Procs()
    rows = []
    scratch = tempfile.mkdtemp(prefix="bench-fleet-")
    try:
        tracker = start_tracker(procs)
        log(f"tracker at {tracker}")
        for n in sizes:
            key = f"fleet{n}"
            for i in range(n):
                start_server(procs, tracker, key, f"{key}-s{i + 1}")
            wait_servers(tracker, key, n)
            log(f"{n} server(s) of key {key} registered; tuning {os.path.basename(a.model)} for {a.trials} trials")
            wd = os.path.join(scratch, key)
            ctx = JobContext(key, lambda *_: None)
            t0 = time.perf_counter()
            result = tune_model({"model": a.model, "inputs": inputs, "trials": a.trials, "trials_per_iter": a.trials_per_iter, "work_dir": wd,
                                 "threads": 2, "measure": False, "out_dir": wd + "-build", "tracker": tracker, "key": key}, ctx)
            wall = time.perf_counter() - t0
            tuning = result["tuning"]
            rows.append({"servers": n, "trials": tuning["new_trials"], "by_server": tuning["fleet"]["trials_by_server"], "wall_s": wall,
                         "tune_s": tuning.get("tune_s"), "estimated_ms": tuning.get("estimated_ms")})
            log(f"{n} server(s): {wall:.0f} s")
    finally:
        procs.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)
    if a.json:
        print(json.dumps(rows))
        return 0
    base = rows[0]["wall_s"] if rows else None
    print(f"\nTune of {os.path.basename(a.model)} ({', '.join(t['name'] + ' ' + 'x'.join(str(d) for d in t['dims']) for t in inputs)}), "
          f"{a.trials} trials, {a.trials_per_iter} per round, over loopback servers (this machine: {os.cpu_count()} cores, shared by all)")
    print(f"{'servers':>7}  {'trials':>6}  {'trials per server':<32} {'wall time':>9}  {'vs first':>8}")
    for r in rows:
        per = ", ".join(f"{k} {v}" for k, v in sorted(r["by_server"].items()))
        print(f"{r['servers']:>7}  {r['trials']:>6}  {per:<32} {r['wall_s']:>7.0f} s  {r['wall_s'] / base:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
