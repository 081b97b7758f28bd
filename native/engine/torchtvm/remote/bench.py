"""`torchtvm bench --tracker HOST:PORT --key KEY MODEL.pt`: upload the model to a server of the key
(one session through TVM's tracker), time it there (remote.server.bench_file: warm-up, then timed
calls; p50/p90/p99) and say which server measured it. The model never runs here, so an export for
a CPU this machine does not have is benchmarked where it can run.

    python -m torchtvm.remote.bench --tracker 127.0.0.1:9190 --key KEY MODEL.pt [--input JSON] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from torchtvm.common.errors import EngineError
from torchtvm.remote.fleet import NO_AUTH, parse_tracker, queues


def bench_remote(tracker: str, key: str, model: str, inputs: list | None = None, warmup: int = 10, iterations: int = 100, threads: int | None = None, timeout: int = 600) -> dict:
    from tvm import rpc

    if not os.path.isfile(model):
        raise EngineError("file_not_found", f"{model} does not exist.")
    row = next((q for q in queues(tracker)["keys"] if q["key"] == key), None)
    if row is None or not row["servers"]:
        raise EngineError("no_servers", f"The tracker at {tracker} has no server for key {key!r}: start one with torchtvm rpc-server --tracker {tracker} --key {key}.")
    host, port = parse_tracker(tracker)
    sess = rpc.connect_tracker(host, port).request(key, priority=1, session_timeout=timeout)
    try:
        f = sess.get_function("torchtvm.remote.bench")
    except Exception as e:
        raise EngineError("not_torchtvm_server", f"The server of key {key!r} is not a torchtvm rpc-server: start it with torchtvm rpc-server.") from e
    name = "bench_" + os.path.basename(model)
    sess.upload(model, name)
    try:
        out = json.loads(str(f(name, json.dumps({"inputs": inputs, "warmup": warmup, "iterations": iterations, "threads": threads}))))
    except Exception as e:
        raise EngineError("remote_bench_failed", f"The benchmark failed on the server of key {key!r}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}") from e
    finally:
        try:
            sess.remove(name)
        except Exception:
            pass
    out.update(model=os.path.abspath(model), tracker=tracker, key=key)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="torchtvm bench --tracker")
    p.add_argument("model")
    p.add_argument("--tracker", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--input", default=None, help="input specs as JSON ([{name, dims, dtype}])")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    try:
        r = bench_remote(a.tracker, a.key, a.model, json.loads(a.input) if a.input else None, a.warmup, a.iterations, a.threads)
    except EngineError as e:
        print(json.dumps({"error": {"code": e.code, "message": str(e)}}) if a.json else f"error: {e}", file=sys.stdout if a.json else sys.stderr)
        return 1
    if a.json:
        print(json.dumps(r))
    else:
        m = r["measured_on"]
        print(f"{r['model']} on {m['name']} ({m['cpu_model']}, {r['threads']} thread(s)), {r['runs']} runs after {r['warmup']} warm-up:")
        print(f"  p50 {r['p50']:.4f} ms  p90 {r['p90']:.4f} ms  p99 {r['p99']:.4f} ms")
        print(NO_AUTH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
