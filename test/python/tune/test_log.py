"""The tuning-log reader (torchtvm.tune.log, RPC `tuning_log`) on hand-written MetaSchedule databases
(workload lines [hash, base64 module], record lines [workload index, [trace, run_secs, target,
args]]): counts, failures, bests, curves, names (sidecar, parsed, index), the estimate, damaged lines
skipped and counted, the refusals; and that it agrees with the repair a resume runs first."""

import base64
import json
import threading

import pytest

from torchtvm.common.errors import EngineError
from torchtvm.tune.database import FAILED_SECS, RECORD_FILE, SIDECAR, WORKLOAD_FILE, repair
from torchtvm.tune.log import read_tuning_log

TARGET = {"kind": "llvm", "mcpu": "znver3", "num-cores": 2}
EMPTY = base64.b64encode(b"{}").decode()


def rec(w, secs, n=4):
    return json.dumps([w, [[[], []], secs, TARGET, []][:n]])


def make_dir(tmp_path, workloads=None, records=None, sidecar=True, name="wd"):
    d = tmp_path / name
    d.mkdir()
    workloads = workloads if workloads is not None else [json.dumps(["111", EMPTY]), json.dumps(["222", EMPTY])]
    records = records if records is not None else [rec(0, [0.003]), rec(0, [0.002]), rec(1, [FAILED_SECS]), rec(0, [0.004]), rec(1, [0.001, 0.003])]
    (d / WORKLOAD_FILE).write_text("\n".join(workloads) + "\n")
    (d / RECORD_FILE).write_text("\n".join(records) + "\n")
    if sidecar:
        (d / SIDECAR).write_text(json.dumps({"format": 1, "model": "/m.pt", "workloads": {"111": {"name": "fused_conv", "weight": 3}, "222": {"name": "dense", "weight": 1}}}))
    return str(d)


def test_counts_failures_bests_curves_and_estimate(tmp_path):
    log = read_tuning_log(make_dir(tmp_path))
    assert (log["records"], log["failures"], log["named_by"], log["model"]) == (5, 1, "workbench", "/m.pt")
    conv, dense = log["tasks"]
    assert (conv["name"], conv["weight"], conv["records"], conv["failures"]) == ("fused_conv", 3, 3, 0)
    assert conv["best_ms"] == pytest.approx(2) and conv["curve"] == pytest.approx([3, 2, 2])
    assert (dense["name"], dense["records"], dense["failures"]) == ("dense", 2, 1)
    assert dense["curve"][0] is None and dense["best_ms"] == pytest.approx(2)
    assert log["estimated_ms"] == pytest.approx(3 * 2 + 2)
    assert log["targets"] == [json.dumps(TARGET, separators=(",", ":"))]
    assert log["skipped"] == {"workload_lines": 0, "record_lines": 0, "reasons": []}
    json.dumps(log, allow_nan=False)  # what the RPC server sends


def test_foreign_dir_is_named_by_index_or_by_the_parsed_global_symbol(tmp_path):
    log = read_tuning_log(make_dir(tmp_path, sidecar=False))
    assert [t["name"] for t in log["tasks"]] == ["workload 0", "workload 1"]
    assert log["named_by"] == "index" and log["estimated_ms"] is None and log["model"] is None
    graph = base64.b64encode(json.dumps({"nodes": [{"type_key": "ffi.String", "data": "global_symbol"}, {"type_key": "ffi.String", "data": "fused_dense_add"}]}).encode()).decode()
    main = base64.b64encode(b'"global_symbol", {"data": "main"}').decode()
    log = read_tuning_log(make_dir(tmp_path, workloads=[json.dumps(["1", graph]), json.dumps(["2", main])], records=[], sidecar=False, name="parsed"))
    assert [t["name"] for t in log["tasks"]] == ["fused_dense_add", "workload 1"]
    assert log["named_by"] == "parsed"


def test_damaged_lines_are_skipped_and_counted(tmp_path):
    d = make_dir(tmp_path, records=[rec(0, [0.003]), "not json", rec(7, [0.001]), rec(1, [0.002]), '[0, [["Sampl', rec(1, [0.1], n=2), rec(-1, [0.1])])
    log = read_tuning_log(d)
    assert log["records"] == 2 and log["skipped"]["record_lines"] == 5
    reasons = " ".join(log["skipped"]["reasons"])
    assert "line 2" in reasons and "workload 7 does not exist" in reasons and "not a MetaSchedule record" in reasons
    log2 = read_tuning_log(make_dir(tmp_path, workloads=[json.dumps(["111", EMPTY]), '["22'], records=[rec(0, [0.001]), rec(1, [0.002])], name="w"))
    assert log2["skipped"]["workload_lines"] == 1 and len(log2["tasks"]) == 2
    assert log2["tasks"][1]["hash"] == "?1" and log2["records"] == 1
    assert "its workload (line 2) is damaged" in " ".join(log2["skipped"]["reasons"])


def test_failed_and_impossible_run_times_count_as_failures(tmp_path):
    log = read_tuning_log(make_dir(tmp_path, records=[rec(0, [-0.5]), rec(0, [-1e308, -1e308]), rec(0, [1e308, 1e308]), rec(0, None), rec(0, [10**400]), rec(1, [0.002])]))
    a, b = log["tasks"]
    assert (a["records"], a["failures"], a["best_ms"]) == (5, 5, None)
    assert a["curve"] == [None] * 5
    assert b["best_ms"] == pytest.approx(2) and log["failures"] == 5
    assert log["estimated_ms"] is None
    json.dumps(log, allow_nan=False)


def test_sidecar_hashes_are_data_and_malformed_entries_are_ignored(tmp_path):
    d = make_dir(tmp_path, workloads=[json.dumps([h, EMPTY]) for h in ("constructor", "__proto__", "toString", "x")], records=[rec(0, [0.001]), rec(1, [0.002]), rec(2, [0.003])], sidecar=False)
    with open(f"{d}/{SIDECAR}", "w") as f:
        f.write('{"format": 1, "workloads": {"__proto__": {"name": "own_proto", "weight": 2}, "toString": 5, "x": {"name": "", "weight": true}, "constructor": {"weight": 1e999}}}')
    log = read_tuning_log(d)
    assert [(t["hash"], t["name"], t["weight"]) for t in log["tasks"]] == [("constructor", "workload 0", None), ("__proto__", "own_proto", 2), ("toString", "workload 2", None), ("x", "workload 3", None)]
    with open(f"{d}/{SIDECAR}", "w") as f:
        f.write("[" * 100000)  # deeper than the JSON parser goes: no names, no crash
    assert read_tuning_log(d)["named_by"] == "index"


def test_refuses_what_is_not_a_work_dir_with_a_sentence(tmp_path):
    with pytest.raises(EngineError) as e:
        read_tuning_log(str(tmp_path / "nope"))
    assert e.value.code == "not_found" and "is not a folder" in e.value.message
    with pytest.raises(EngineError) as e:
        read_tuning_log("/")
    assert e.value.code == "not_a_tuning_dir"
    assert e.value.message == "/ is not a MetaSchedule work dir: database_workload.json and database_tuning_record.json are missing."
    (tmp_path / WORKLOAD_FILE).write_text("")
    with pytest.raises(EngineError, match=r"database_tuning_record\.json is missing\.$"):
        read_tuning_log(str(tmp_path))
    (tmp_path / RECORD_FILE).mkdir()
    with pytest.raises(EngineError) as e:
        read_tuning_log(str(tmp_path))
    assert e.value.code == "unreadable" and "it is a folder, not a file" in e.value.message


def test_reader_and_repair_agree_on_the_usable_records(tmp_path):
    """A resume repairs the database first: the log read before and after shows the same records."""
    d = make_dir(tmp_path, workloads=['["h0", "m0"]', '["h1", "m1"', '["h2", "m2"]', "true", '["h4", "m4"]'], records=[rec(0, [0.1]), rec(1, [0.2]), rec(2, [0.3]), rec(3, [0.4]), rec(4, [0.5]), rec(2, ["x"]), rec(4, [0.6], n=2), "[2.5, []]", rec(4, None), "torn ["], sidecar=False)

    def usable(log):
        return {t["hash"]: (t["records"], t["failures"], t["best_ms"]) for t in log["tasks"] if not t["hash"].startswith("?")}

    before = read_tuning_log(d)
    report = repair(d)
    after = read_tuning_log(d)
    assert usable(after) == usable(before) and after["records"] == before["records"] == 4
    assert report["orphaned_records"] == 2
    assert after["skipped"]["record_lines"] + after["skipped"]["workload_lines"] == 0


def test_rpc_server_answers_tuning_log_while_a_job_runs(tmp_path, monkeypatch):
    """The server runs `tuning_log` on its own thread: it answers while the queue's job still runs."""
    import io

    from torchtvm.service import methods, rpc_server

    release = threading.Event()

    def slow(params, ctx):
        release.wait(20)
        return {"done": True}

    monkeypatch.setitem(methods.METHODS, "slow", slow)
    replies: list[dict] = []
    got_log = threading.Event()

    class Out(io.StringIO):
        def write(self, s):
            for line in s.splitlines():
                msg = json.loads(line)
                replies.append(msg)
                if msg.get("id") == "log":
                    got_log.set()
                    release.set()
            return len(s)

    d = make_dir(tmp_path)
    lines = [json.dumps({"id": "job", "method": "slow", "params": {}}), json.dumps({"id": "log", "method": "tuning_log", "params": {"dir": d}}), json.dumps({"id": "bad", "method": "tuning_log", "params": {"dir": 5}})]
    server = rpc_server.Server(Out())
    t = threading.Thread(target=server.serve, args=(iter([l + "\n" for l in lines]),))
    t.start()
    assert got_log.wait(20), replies
    t.join(30)
    by_id = {r.get("id"): r for r in replies if "id" in r}
    ids = [r.get("id") for r in replies if "id" in r]
    assert ids.index("log") < ids.index("job")  # answered before the job it arrived behind
    assert by_id["log"]["result"]["records"] == 5
    assert by_id["bad"]["error"]["code"] == "bad_params"
    assert by_id["job"].get("result") == {"done": True} or by_id["job"]["error"]["code"] == "cancelled"
