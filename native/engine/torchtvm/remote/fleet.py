"""A tracker's queues and the servers of one key, read through TVM's own tracker client.

`queues(tracker)`: what `python -m tvm.exec.query_rpc_tracker` prints, as data (servers, free and
pending per key). `probe(tracker, key)`: one session with each server of the key (each session
keeps its server busy, so the next request is handed another), asking each for its CPU
(torchtvm.remote.cpu_info); the key is refused when its servers disagree on CPU features, and the
build target is the servers' CPU, not this machine's.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field

from torchtvm.common.errors import EngineError

NO_AUTH = ("TVM's RPC protocol has no authentication: anyone who can reach the tracker or a server "
           "can upload and run code on the servers. Use it on a network you trust.")


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EngineError("bad_tracker", f"The tracker address must be HOST:PORT (for example 127.0.0.1:9190), not {str(text)[:60]!r}.")
    return host, int(port)


def _connect(tracker: str, timeout: float = 5.0):
    from tvm import rpc

    host, port = parse_tracker(tracker)
    # TVM's client retries a refused connection for a long while: ask the socket first, so that a
    # tracker that is down is a sentence at once.
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise EngineError("tracker_unreachable", f"No RPC tracker answers at {host}:{port} ({e.strerror or e}). Start it (python -m tvm.exec.rpc_tracker --host {host} --port {port}) "
                          "or check --tracker; nothing was built.") from e
    try:
        return rpc.connect_tracker(host, port)
    except Exception as e:
        raise EngineError("tracker_unreachable", f"{host}:{port} does not answer as a TVM RPC tracker: {e}. Nothing was built.") from e


def queues(tracker: str) -> dict:
    """The tracker's figures per key: servers registered, free, pending requests; and each server's
    address. The shape the Targets page and `torchtvm targets` show."""
    t = _connect(tracker)
    try:
        summary = t.summary()
    finally:
        t.close()
    servers: dict[str, list] = {}
    for item in summary.get("server_info", []):
        key = str(item.get("key", "")).split(":", 1)[-1]
        servers.setdefault(key, []).append(":".join(str(a) for a in item.get("addr", [])))
    keys = sorted(set(servers) | set(summary.get("queue_info", {})))
    out = []
    for k in keys:
        q = summary.get("queue_info", {}).get(k, {})
        out.append({"key": k, "servers": len(servers.get(k, [])), "free": int(q.get("free", 0)), "pending": int(q.get("pending", 0)),
                    "addresses": sorted(servers.get(k, []))})
    return {"tracker": tracker, "keys": [q for q in out if q["servers"] or q["pending"]], "note": NO_AUTH}


@dataclass
class Fleet:
    """The servers of a key and the target they agree on."""

    tracker: str
    key: str
    servers: list[dict] = field(default_factory=list)  # each one's cpu_info

    @property
    def size(self) -> int:
        return len(self.servers)

    def target_json(self, num_cores: int | None = None) -> str:
        s = self.servers[0]
        t: dict = {"kind": "llvm", "mcpu": s["llvm_cpu"]}
        from tvm.target import codegen

        if s.get("triple") and s["triple"] != str(codegen.llvm_get_system_triple()):
            t["mtriple"] = s["triple"]  # another architecture or OS: said; the same one: as a local build says it
        t["num-cores"] = int(num_cores or s.get("cores") or 1)
        # The code may use what every server reports, and nothing the CPU model has that they hide
        # (a VM's CPUID): the same rule as a build for this machine (backend/build.resolve_target).
        from tvm.target import Target

        from torchtvm.common import cpu_features

        model = set(cpu_features.target_features(Target(t)))
        hidden = sorted(model - set(s["features"]))
        if hidden:
            t["mattr"] = [f"-{f}" for f in hidden]
        return json.dumps(t)

    def why_not_runnable(self, target, features) -> str | None:
        """A sentence saying why the servers cannot run code for `target` (they lack some of
        `features`, or are another architecture), or None when they can. The servers of a key
        agree on their CPU (probe), so the first one answers for all."""
        from torchtvm.common import cpu_features

        return cpu_features.why_not_runnable_on(target, features, self.servers[0])

    def to_json(self) -> dict:
        return {"tracker": self.tracker, "key": self.key, "servers": [{k: s.get(k) for k in ("name", "cpu_model", "llvm_cpu", "features", "cores")} for s in self.servers]}


def _describe(s: dict) -> str:
    return f"{s.get('name')} ({s.get('cpu_model')}, {s.get('llvm_cpu')})"


def probe(tracker: str, key: str, timeout: float = 30.0) -> Fleet:
    """Ask every server of `key` for its CPU. Raises an EngineError with a sentence when the
    tracker is down, the key has no server, a server is not a torchtvm rpc-server, or the servers
    disagree on CPU features."""
    if not key:
        raise EngineError("bad_key", "A tracker needs a key (--key KEY): the queue of servers to measure on.")
    figures = queues(tracker)
    row = next((q for q in figures["keys"] if q["key"] == key), None)
    if row is None or row["servers"] == 0:
        known = ", ".join(f"{q['key']} ({q['servers']})" for q in figures["keys"]) or "none"
        raise EngineError("no_servers", f"The tracker at {tracker} has no server for key {key!r} (keys there: {known}). "
                          f"Start one: torchtvm rpc-server --tracker {tracker} --key {key}. Nothing was built.")
    from tvm import rpc

    host, port = parse_tracker(tracker)
    infos: list[dict | None] = [None] * row["servers"]
    errors: list[str] = []
    sessions = []
    lock = threading.Lock()
    done = threading.Event()

    def ask(i: int) -> None:
        try:
            sess = rpc.connect_tracker(host, port).request(key, priority=2, session_timeout=int(timeout) + 30, max_retry=2)
            with lock:
                sessions.append(sess)
            try:
                f = sess.get_function("torchtvm.remote.cpu_info")
            except Exception:
                errors.append("a server of this key is not a torchtvm rpc-server (TVM's plain rpc_server does not say which CPU it has); start the servers with torchtvm rpc-server")
                return
            infos[i] = json.loads(str(f()))
        except Exception as e:
            errors.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    # Sessions are asked for together and kept open until all have answered: a server is handed to
    # one session at a time, so each request reaches a different server.
    threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(row["servers"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    done.set()
    with lock:
        sessions.clear()  # closes them
    got = [s for s in infos if s is not None]
    if errors and any("not a torchtvm rpc-server" in e for e in errors):
        raise EngineError("not_torchtvm_server", f"Key {key!r}: " + next(e for e in errors if "not a torchtvm" in e) + ". Nothing was built.")
    if not got:
        why = f" ({errors[0]})" if errors else " (every server stayed busy)"
        raise EngineError("no_servers", f"No server of key {key!r} at {tracker} answered within {timeout:.0f} s{why}. Nothing was built.")
    by_features: dict[tuple, list[dict]] = {}
    for s in got:
        by_features.setdefault((s.get("arch"), tuple(s.get("features") or [])), []).append(s)
    if len(by_features) > 1:
        groups = list(by_features.values())
        a, b = groups[0][0], groups[1][0]
        fa, fb = set(a.get("features") or []), set(b.get("features") or [])
        diff = sorted(fa ^ fb)
        raise EngineError("mixed_cpus", f"The servers of key {key!r} disagree on CPU features: {_describe(a)} and {_describe(b)} differ in "
                          f"{', '.join(diff[:8]) or 'architecture'}{'…' if len(diff) > 8 else ''}. One build cannot be measured on both; "
                          "give each CPU its own key. Nothing was built.")
    return Fleet(tracker, key, got)


def main(argv=None) -> int:
    """`python -m torchtvm.remote.fleet HOST:PORT [--key KEY]`: the tracker's queues as JSON; with
    --key, also the key's servers and the target a build for them gets (or the refusal)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="torchtvm targets")
    p.add_argument("tracker")
    p.add_argument("--key", default=None)
    a = p.parse_args(argv)
    try:
        out = queues(a.tracker)
        if a.key:
            f = probe(a.tracker, a.key)
            out["probe"] = {**f.to_json(), "target": json.loads(f.target_json())}
    except EngineError as e:
        print(json.dumps({"error": {"code": e.code, "message": str(e)}}))
        return 1
    print(json.dumps(out))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
