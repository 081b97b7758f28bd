"""Property-based fuzzing (hypothesis) of the engine's input boundaries:

- `specs`: the Python input-spec parser (torchtvm.common.specs.parse_specs), on arbitrary JSON values and
  on near-valid specs;
- `rpc`: the engine's JSON-lines RPC (`python -m torchtvm.service`, a real subprocess), on arbitrary
  lines, JSON values and near-valid requests.

Properties: no crash (the parser raises only EngineError; the engine process never dies), no hang
(each input answered within a time limit), every failure a sentence (a message ending in a full
stop, never the "internal" code or a traceback) and exactly one reply per request.

    .venv/bin/python scripts/fuzz_engine.py [--examples 10000] [--target specs|rpc|all] [--json]

`npm run fuzz:engine` runs 10,000 inputs per target; test/python/service/test_fuzz_rpc.py runs a few
hundred in CI. Prints counts per target: inputs, crashes, hangs, failures that were not sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "native", "engine"))

# ---- strategies -----------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(_scalars, lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(st.text(max_size=10), kids, max_size=5)), max_leaves=20)

_dim = st.one_of(
    st.integers(min_value=-3, max_value=2**45),
    st.sampled_from(["batch", "seq", "", "1x", "b"]),
    st.fixed_dictionaries({"name": st.sampled_from(["batch", "seq", "n", "", "not valid"])}, optional={"min": json_values | st.integers(-2, 10), "max": json_values | st.integers(-2, 2**41)}),
    json_values,
)
_spec = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["x", "y", "ids"]), json_values), "dims": st.one_of(st.lists(_dim, max_size=6), json_values)},
    optional={
        "dtype": st.one_of(st.sampled_from(["float32", "float16", "bfloat16", "int64", "int32", "bool", "float64", "complex64"]), json_values),
        "range": st.one_of(st.lists(st.one_of(st.integers(-10, 1000), st.floats(allow_nan=True, allow_infinity=True), json_values), max_size=3), json_values),
    },
)
spec_inputs = st.one_of(st.lists(_spec, max_size=4), json_values)

_methods = st.one_of(st.sampled_from(["inspect", "compile", "tune", "versions", "cancel", "nope", ""]), json_values)
_params = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.one_of(st.sampled_from(["", "/", "/no/such.pt", "m.pt", "."]), json_values),
            "inputs": spec_inputs,
            "threads": json_values | st.integers(-5, 10000),
            "trials": json_values | st.integers(-5, 10),
            "target": st.one_of(st.sampled_from(["llvm", "cuda", "{", '{"kind": "llvm", "mcpu": "nope"}']), json_values),
            "job": json_values,
            "export_path": json_values,
            "_database": json_values,
        },
    ),
    json_values,
)
_request = st.fixed_dictionaries({"id": st.one_of(st.integers(), st.text(max_size=12), json_values), "method": _methods}, optional={"params": _params})
rpc_lines = st.one_of(
    _request.map(lambda r: json.dumps(r)),
    json_values.map(lambda v: json.dumps(v)),
    st.text(max_size=80).map(lambda t: t.replace("\n", " ")),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ").decode("latin-1")),
)


def _is_sentence(msg) -> bool:
    return isinstance(msg, str) and 0 < len(msg) < 2000 and msg.rstrip().endswith(".") and "Traceback" not in msg


def _settings(n: int):
    return settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))


# ---- target: spec parser ----------------------------------------------------------------------------

def fuzz_specs(n: int, per_input_s: float = 5.0) -> dict:
    from torchtvm.common.errors import EngineError
    from torchtvm.common.specs import InputSpec, parse_specs

    stats = {"target": "specs", "inputs": 0, "accepted": 0, "refused": 0, "crashes": 0, "hangs": 0, "not_sentences": 0, "examples": []}

    @_settings(n)
    @given(spec_inputs)
    def run(value):
        stats["inputs"] += 1
        t0 = time.perf_counter()
        try:
            specs = parse_specs(value)
            assert all(isinstance(s, InputSpec) and isinstance(s.name, str) for s in specs)
            json.dumps([s.to_json() for s in specs], allow_nan=False)  # what travels on must serialise
            stats["accepted"] += 1
        except EngineError as e:
            stats["refused"] += 1
            if not _is_sentence(e.message):
                stats["not_sentences"] += 1
                _keep(stats, value, e.message)
        except Exception as e:  # anything else is a crash of the parser
            stats["crashes"] += 1
            _keep(stats, value, f"{type(e).__name__}: {e}")
        if time.perf_counter() - t0 > per_input_s:
            stats["hangs"] += 1
            _keep(stats, value, "slow")

    run()
    return stats


def _keep(stats, value, why):
    if len(stats["examples"]) < 10:
        stats["examples"].append({"input": repr(value)[:300], "why": str(why)[:300]})


# ---- target: JSON-lines RPC ---------------------------------------------------------------------------

class Engine:
    """The real engine process, one request at a time."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "native", "engine"))
        self.proc = subprocess.Popen([sys.executable, "-m", "torchtvm.service"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
        self._buf = b""
        ready = self.read(120)
        assert ready and ready.get("event") == "engine.ready", ready

    def read(self, timeout: float):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return "EOF"
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, line: str, timeout: float):
        """Send one line; return the reply (skipping events), "EOF" if the engine died, None on timeout."""
        try:
            self.proc.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return "EOF"
        while True:
            msg = self.read(timeout)
            if msg is None or msg == "EOF":
                return msg
            if "event" not in msg:
                return msg

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def fuzz_rpc(n: int, per_input_s: float = 60.0) -> dict:
    stats = {"target": "rpc", "inputs": 0, "blank": 0, "replies": 0, "error_replies": 0, "crashes": 0, "hangs": 0, "not_sentences": 0, "examples": []}
    engine = [Engine()]
    seq = [0]

    @_settings(n)
    @given(rpc_lines)
    def run(line):
        stats["inputs"] += 1
        if not line.strip():
            stats["blank"] += 1
            return  # blank lines are skipped by the protocol: no reply is due
        try:
            req = json.loads(line)
        except Exception:
            req = None
        if isinstance(req, dict) and req.get("method") == "shutdown":
            return  # the one request that ends the engine on purpose
        if isinstance(req, dict) and isinstance(req.get("id"), (str, int)) and not isinstance(req.get("id"), bool):
            # a unique id per request (duplicates are refused by design, and tested elsewhere)
            seq[0] += 1
            req["id"] = f"{req['id']}-{seq[0]}" if isinstance(req["id"], str) else seq[0]
            line = json.dumps(req)
        reply = engine[0].request(line, per_input_s)
        if reply in (None, "EOF"):
            stats["hangs" if reply is None else "crashes"] += 1
            _keep(stats, line, "no reply in time" if reply is None else "the engine exited")
            engine[0].proc.kill()
            engine[0] = Engine()
            return
        stats["replies"] += 1
        if "error" in reply:
            stats["error_replies"] += 1
            err = reply["error"]
            if err.get("code") == "internal" or not _is_sentence(err.get("message")):
                stats["not_sentences"] += 1
                _keep(stats, line, err)

    try:
        run()
        # the engine still answers a real request after everything it was sent
        alive = engine[0].request(json.dumps({"id": "final", "method": "versions"}), 120)
        if not (isinstance(alive, dict) and "result" in alive):
            stats["crashes"] += 1
            _keep(stats, "versions", alive)
    finally:
        engine[0].close()
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--target", choices=["specs", "rpc", "all"], default="all")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for name, fn in (("specs", fuzz_specs), ("rpc", fuzz_rpc)):
        if args.target in (name, "all"):
            t0 = time.perf_counter()
            r = fn(args.examples)
            r["seconds"] = round(time.perf_counter() - t0, 1)
            results.append(r)
            if not args.json:
                print(f"{name:6s} inputs {r['inputs']:6d}  crashes {r['crashes']}  hangs {r['hangs']}  not sentences {r['not_sentences']}  ({r['seconds']} s)"
                      + (f"  accepted {r['accepted']} refused {r['refused']}" if name == "specs" else f"  error replies {r['error_replies']}"))
                for ex in r["examples"]:
                    print("   ", ex)
    if args.json:
        print(json.dumps(results, indent=1))
    bad = sum(r["crashes"] + r["hangs"] + r["not_sentences"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
