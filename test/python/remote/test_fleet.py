"""Tuning over TVM's RPC tracker, all on 127.0.0.1: a tracker and measuring servers started by the
tests (TVM's own tracker, `python -m torchtvm.remote.server`), every process stopped at the end.

A tune spreads its trials over two servers and says which one measured each; killing one server
mid-tune loses no record and the tune ends on the other; a key whose servers report different CPU
features is refused; a tracker that is down is a sentence before anything is built. Small budgets
on the two-matmul model (16 and 10 trials: a trial over RPC takes seconds on a busy 2-core machine).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from torchtvm.common.errors import EngineError
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import tune_model
from torchtvm.remote import fleet as fleet_mod
from torchtvm.tune.database import MEASURED_ON_FILE, RECORD_FILE, read_measured_on
from torchtvm.tune.log import read_tuning_log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ENGINE = os.path.join(ROOT, "native", "engine")
INPUTS = [{"name": "x", "dims": [4, 32], "dtype": "float32"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ENGINE + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Procs:
    """Processes the test started, each in its own process group (a server's sessions are forked
    children), all killed at the end."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args, **env):
        p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(**env), start_new_session=True)
        self.procs.append(p)
        return p

    def kill(self, p):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=30)

    def stop_all(self):
        for p in self.procs:
            self.kill(p)
        assert all(p.poll() is not None for p in self.procs)


def _wait_listening(p, timeout=120.0) -> dict:
    """The server's first line (its CPU report), read with a deadline."""
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    assert out and out[0].startswith("{"), f"the server did not start: {out}"
    # Drain the rest so that a full pipe never blocks the server.
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return json.loads(out[0])


def _wait_servers(tracker: str, key: str, n: int, timeout=60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            row = next((q for q in fleet_mod.queues(tracker)["keys"] if q["key"] == key), None)
            if row and row["servers"] >= n and row["free"] >= n:
                return
        except EngineError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{n} server(s) of {key} did not register with {tracker}")


@pytest.fixture(scope="module")
def procs():
    ps = Procs()
    yield ps
    ps.stop_all()


@pytest.fixture(scope="module")
def tracker(procs):
    port = _free_port()
    procs.start(["-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)])
    addr = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            fleet_mod.queues(addr)
            return addr
        except EngineError:
            assert time.time() < deadline, "the tracker did not start"
            time.sleep(0.5)


def _server(procs, tracker, key, name, **env):
    port = _free_port()
    p = procs.start(["-m", "torchtvm.remote.server", "--tracker", tracker, "--key", key, "--port", str(port), "--port-end", str(port + 1), "--name", name], **env)
    info = _wait_listening(p)
    assert info["name"] == name and info["host"] == "127.0.0.1" and info["key"] == key
    return p, info


@pytest.fixture(scope="module")
def pair(procs, tracker):
    """Two servers of key "pair": (the key, their processes)."""
    a, _ = _server(procs, tracker, "pair", "alpha")
    b, _ = _server(procs, tracker, "pair", "beta")
    _wait_servers(tracker, "pair", 2)
    return "pair", [a, b]


def _tune(model, wd, trials, tracker, key, sink=None, ctx=None):
    events = []

    def record(ev, data):
        events.append((ev, data))
        if sink:
            sink(ev, data)

    ctx = ctx or JobContext("t", lambda *_: None)
    ctx._sink = record
    params = {"model": model, "inputs": INPUTS, "trials": trials, "trials_per_iter": 2, "work_dir": wd, "threads": 2, "out_dir": wd + "-build", "tracker": tracker, "key": key}
    return tune_model(params, ctx), events


def test_tracker_down_is_a_sentence_before_anything_is_built(two_op_model, tmp_path):
    port = _free_port()  # nothing listens there
    with pytest.raises(EngineError) as e:
        _tune(two_op_model, str(tmp_path / "wd"), 4, f"127.0.0.1:{port}", "nobody")
    assert e.value.code == "tracker_unreachable" and "nothing was built" in str(e.value)
    assert not (tmp_path / "wd").exists() and not (tmp_path / "wd-build").exists()


def test_server_refuses_without_tracker_and_warns_off_loopback():
    port = _free_port()
    r = subprocess.run([sys.executable, "-m", "torchtvm.remote.server", "--tracker", f"127.0.0.1:{port}", "--key", "k", "--host", "0.0.0.0"],
                       capture_output=True, text=True, env=_env(), timeout=120, check=False)
    assert r.returncode != 0
    assert "no authentication" in r.stderr and "no RPC tracker answers" in r.stderr


def test_mixed_cpu_features_are_refused(procs, tracker, two_op_model, tmp_path):
    _server(procs, tracker, "mixed", "plain")
    _server(procs, tracker, "mixed", "odd", TORCHTVM_RPC_REPORT_FEATURES="sse4.1,sse4.2,avx,avx2,fma")
    _wait_servers(tracker, "mixed", 2)
    with pytest.raises(EngineError) as e:
        _tune(two_op_model, str(tmp_path / "wd"), 4, tracker, "mixed")
    assert e.value.code == "mixed_cpus" and "disagree on CPU features" in str(e.value)
    assert not (tmp_path / "wd").exists()


def test_tune_spreads_over_two_servers(pair, tracker, two_op_model, tmp_path):
    queues = fleet_mod.queues(tracker)
    assert {"key": "pair", "servers": 2} .items() <= next(q for q in queues["keys"] if q["key"] == "pair").items()
    wd = str(tmp_path / "wd")
    result, events = _tune(two_op_model, wd, 16, tracker, "pair")
    trials = [d for e, d in events if e == "tune.trial"]
    assert len(trials) == 16
    by = result["tuning"]["fleet"]["trials_by_server"]
    assert set(by) == {"alpha", "beta"} and sum(by.values()) == 16, by  # both measured
    assert all(d["server"] in ("alpha", "beta") for d in trials)
    assert result["target"]["target"].get("mcpu") == result["tuning"]["fleet"]["servers"][0]["llvm_cpu"]
    assert result["verification"]["ok"]
    # Every record says where it was measured; the log splits by machine.
    with open(os.path.join(wd, RECORD_FILE)) as f:
        n = sum(1 for l in f if l.strip())
    assert n == 16 and len(read_measured_on(wd)) == 16
    log = read_tuning_log(wd)
    assert {m["server"]: m["records"] for m in log["machines"]} == by


def test_killing_one_server_mid_tune_loses_no_record(procs, tracker, two_op_model, tmp_path):
    victim, _ = _server(procs, tracker, "kill", "doomed")
    _server(procs, tracker, "kill", "survivor")
    _wait_servers(tracker, "kill", 2)
    wd = str(tmp_path / "wd")
    rec = os.path.join(wd, RECORD_FILE)
    snap: dict = {}

    def sink(ev, data):
        if ev == "tune.trial" and data["total_trials"] >= 3 and not snap:
            with open(rec, "rb") as f:
                snap["bytes"] = f.read()
            snap["at"] = data["total_trials"]
            procs.kill(victim)

    result, events = _tune(two_op_model, wd, 10, tracker, "kill", sink)
    assert snap, "the tune never reached the kill"
    with open(rec, "rb") as f:
        after = f.read()
    before_n = snap["bytes"].count(b"\n")
    after_n = after.count(b"\n")
    print(f"records before the kill: {before_n}, after the tune: {after_n}")
    assert after.startswith(snap["bytes"]) and after_n >= before_n  # nothing recorded is lost
    trials = [d for e, d in events if e == "tune.trial"]
    later = [d for d in trials if d["total_trials"] > snap["at"] + 2]  # past the batch in flight at the kill
    assert later and all(d["server"] == "survivor" for d in later if d["error"] is None)
    # A trial the dead server could not finish is a failure, never a timing.
    assert all(d["error"] for d in later if d["server"] == "doomed")
    assert result["tuning"]["fleet"]["trials_by_server"].get("survivor", 0) > 0
    where = read_measured_on(wd)
    assert os.path.exists(os.path.join(wd, MEASURED_ON_FILE)) and set(where.values()) <= {"doomed", "survivor"}


def test_cancel_leaves_no_process_on_either_side(procs, pair, tracker, two_op_model, tmp_path):
    import psutil
    from torchtvm.common.errors import Cancelled

    key, servers = pair
    ours = {p.pid for p in procs.procs}
    me = psutil.Process()

    def strays():
        # This process's children that the test did not start (and are not theirs): the tune's
        # builder and runner workers.
        theirs = set(ours)
        for pid in ours:
            try:
                theirs |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass
        return [c for c in me.children(recursive=True) if c.pid not in theirs and c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

    before = {c.pid for c in strays()}
    ctx = JobContext("t", lambda *_: None)

    def sink(ev, data):
        if ev == "tune.trial" and data["total_trials"] >= 2:
            ctx.cancel()

    with pytest.raises(Cancelled):
        _tune(two_op_model, str(tmp_path / "wd"), 12, tracker, key, sink, ctx)
    deadline = time.time() + 20
    while time.time() < deadline:
        left_here = [c for c in strays() if c.pid not in before]
        left_there = [c for s in servers for c in psutil.Process(s.pid).children(recursive=True)]
        if not left_here and not left_there:
            break
        time.sleep(0.5)
    assert not left_here, [" ".join(c.cmdline())[:100] for c in left_here]
    assert not left_there, "a server still has a session process after the cancel"


# ---- a build for a CPU this machine does not have, verified on a server that has it (item 5) ----
#
# This machine's CPU usually has every feature a build uses, so the engine is told to believe it
# lacks one (TORCHTVM_HIDE_CPU_FEATURES, read by cpu_features.host_flags): the build then cannot run
# here, is never run here, and the servers, which really have it, run it. The code is real, the
# servers are real, and nothing of the verification is faked.

def _hideable(features) -> str:
    feature = next((f for f in ("avx2", "avx", "sse4.2", "ssse3") if f in features), None)
    if feature is None:
        pytest.skip("this CPU reports none of avx2, avx, sse4.2, ssse3 to hide")
    return feature


def _compile(model, tmp_path, tracker, key, **extra):
    from torchtvm.pipeline.compile import compile_model

    events = []
    ctx = JobContext("t", lambda *_: None)
    ctx._sink = lambda ev, data: events.append((ev, data))
    params = {"model": model, "inputs": INPUTS, "threads": 2, "out_dir": str(tmp_path / "build"), "export_path": str(tmp_path / "out.pt"),
              "tracker": tracker, "key": key, **extra}
    return compile_model(params, ctx), events


def _metadata(path):
    import torch
    from torchtvm.common.runtime_library import exported_metadata, load_library

    load_library()
    meta = exported_metadata(torch.jit.load(path))
    assert meta is not None
    return meta


def test_a_build_this_machine_cannot_run_is_verified_and_timed_on_a_server_that_can(pair, tracker, two_op_model, tmp_path, monkeypatch):
    fleet = fleet_mod.probe(tracker, "pair")
    hidden = _hideable(fleet.servers[0]["features"])
    monkeypatch.setenv("TORCHTVM_HIDE_CPU_FEATURES", hidden)
    r, events = _compile(two_op_model, tmp_path, tracker, "pair")  # no --trials; the target: the servers' CPU
    assert hidden in r["target"]["features"]
    v = r["verification"]
    assert v["ok"] and not v.get("skipped") and v["outputs"], v
    assert v["verified_on"]["name"] in ("alpha", "beta") and v["verified_on"]["key"] == "pair" and v["verified_on"]["tracker"] == tracker
    assert v["edge_values"]["ok"]
    lat = r["latency_ms"]
    assert lat["measured_on"]["name"] in ("alpha", "beta") and lat["tvm"]["p50"] > 0 and lat["torch"]["p50"] > 0 and lat["baseline"] == "TorchScript"
    logs = [d.get("message", "") for e, d in events if e == "log"]
    assert any("verified on alpha" in m or "verified on beta" in m for m in logs), logs
    # Verified, so exported: no refusal, and the file records where it was verified.
    assert "export_skipped" not in r and os.path.isfile(r["files"]["exported"])
    monkeypatch.delenv("TORCHTVM_HIDE_CPU_FEATURES")
    meta = _metadata(r["files"]["exported"])
    assert meta["verification"]["ok"] and meta["verification"]["verified_on"] in ("alpha", "beta")


def test_without_a_server_that_can_run_it_export_unverified_writes_it_marked_and_load_warns(procs, pair, tracker, two_op_model, tmp_path, monkeypatch):
    from torchtvm.common import cpu_features

    target = fleet_mod.probe(tracker, "pair").target_json(2)  # this CPU, with everything it has
    have = sorted(f for f, flag in cpu_features.X86_FEATURES.items() if flag in cpu_features.host_flags())
    hidden = _hideable(have)
    # A server that reports this CPU without that feature: it cannot run the build either.
    _server(procs, tracker, "older", "older", TORCHTVM_RPC_REPORT_FEATURES=",".join(f for f in have if f != hidden))
    _wait_servers(tracker, "older", 1)
    monkeypatch.setenv("TORCHTVM_HIDE_CPU_FEATURES", hidden)
    r, _ = _compile(two_op_model, tmp_path, tracker, "older", target=target)
    v = r["verification"]
    assert v["skipped"] and not v["ok"] and "verified_on" not in v and "latency_ms" not in r
    assert "can run it either" in v["reason"] and "older" in v["reason"] and f"lacks {hidden}" in v["reason"], v["reason"]
    assert "Not exported" in r["export_skipped"] and not os.path.exists(tmp_path / "out.pt")
    r, _ = _compile(two_op_model, tmp_path, tracker, "older", target=target, export_unverified=True)
    out = r["files"]["exported"]
    monkeypatch.delenv("TORCHTVM_HIDE_CPU_FEATURES")
    meta = _metadata(out)
    assert meta["verification"]["ok"] is False and meta["verification"]["skipped"] and f"lacks {hidden}" in meta["verification"]["reason"]
    # Loading it (this machine really has the feature) says so, in a fresh process.
    code = ("import warnings, torch, torchtvm\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            f"    m = torch.jit.load({out!r})\n"
            "print('WARNED:' + ' | '.join(str(x.message) for x in w))\n"
            "m(torch.randn(4, 32))\n"
            "print('RAN')\n")
    env = _env()
    env.pop("TORCHTVM_HIDE_CPU_FEATURES", None)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    said = p.stdout + p.stderr
    assert "RAN" in p.stdout, said[-2000:]
    assert "exported without a passing verification" in said and f"lacks {hidden}" in said, said[-2000:]
