"""Tuning: per-trial events, monotone best-so-far, estimate; cancel then resume without re-measuring;
SIGKILL mid-tune then resume from the repaired database. Small budgets (a two-matmul model)."""

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import tune_model
from torchtvm.tune.database import RECORD_FILE, WORKLOAD_FILE, repair_database

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INPUTS = [{"name": "x", "dims": [4, 32], "dtype": "float32"}]


@pytest.fixture
def model(two_op_model):
    return two_op_model


def _records(work_dir):
    with open(os.path.join(work_dir, RECORD_FILE)) as f:
        return [l for l in f if l.strip()]


def _run(model, work_dir, trials, cancel_after=None, **extra):
    events = []
    ctx = JobContext("t", lambda ev, data: events.append((ev, data)))
    if cancel_after is not None:
        def sink(ev, data):
            events.append((ev, data))
            if ev == "tune.trial" and data["total_trials"] >= cancel_after:
                ctx.cancel()
        ctx._sink = sink
    params = {"model": model, "inputs": INPUTS, "trials": trials, "work_dir": work_dir, "threads": 2, "measure": True, "out_dir": os.path.join(work_dir, "..", "build"), **extra}
    return tune_model(params, ctx), events, ctx


def test_tune_events_and_result(model, tmp_path):
    wd = str(tmp_path / "wd")
    result, events, _ = _run(model, wd, trials=8)
    tasks = [d for e, d in events if e == "tune.tasks"]
    assert len(tasks) == 1 and len(tasks[0]["tasks"]) == 2
    trials = [d for e, d in events if e == "tune.trial"]
    assert len(trials) == result["tuning"]["new_trials"] == 8  # the budget is exact
    for tid in {d["task_id"] for d in trials}:
        bests = [d["best_ms"] for d in trials if d["task_id"] == tid and d["best_ms"] is not None]
        assert bests == sorted(bests, reverse=True), "best-so-far must never rise"
    assert result["tuning"]["estimated_ms"] and result["tuning"]["estimated_ms"] > 0
    # Every kernel's default schedule is timed first: the estimate exists from the first trial and
    # never exceeds what the untuned build runs; a record is applied only where it beats the default.
    tasks_out = result["tuning"]["tasks"]
    assert all(t["default_ms"] and t["default_ms"] > 0 for t in tasks_out)
    assert trials[0]["estimated_total_ms"] is not None
    assert result["tuning"]["estimated_ms"] <= sum(t["weight"] * t["default_ms"] for t in tasks_out) + 1e-9
    assert all((t["applied"] == "record") == (t["best_ms"] is not None and t["best_ms"] < t["default_ms"]) for t in tasks_out)
    assert trials[-1]["estimated_total_ms"] == pytest.approx(result["tuning"]["estimated_ms"])
    assert result["verification"]["ok"]
    assert result["latency_ms"]["tvm"]["p50"] > 0
    assert len(_records(wd)) == result["tuning"]["trials"]
    assert os.path.exists(os.path.join(wd, "workbench_tasks.json"))
    # The records are for the kernels the build looks up (legalized, before any default schedule).
    from tvm.s_tir import meta_schedule as ms

    from torchtvm.backend import build as builder
    from torchtvm.frontend.importer import import_torchscript
    from torchtvm.frontend.loader import load_torchscript
    from torchtvm.common.specs import parse_specs

    info = builder.resolve_target("llvm", 2)
    legalized = builder.legalize(builder.prepare(import_torchscript(load_torchscript(model), parse_specs(INPUTS)).mod, info), info)
    db = ms.database.JSONDatabase(work_dir=wd, module_equality="structural")
    kernels = [t.dispatched[0] for t in ms.relax_integration.extract_tasks(legalized, info.target)]
    assert len(kernels) == 2 and all(db.has_workload(k) for k in kernels)
    # Per-op placement: both linears were timed alone as library kernels and as tuned TVM kernels,
    # each runs where it was clearly faster, and the build kept is never slower than the library
    # everywhere (the untuned default).
    if builder.uses_library(info):
        # Tuning weighs each linear's kernel against its library call, timed before tuning starts.
        assert all(t["library_ms"] and t["library_ms"] > 0 for t in tasks_out), tasks_out
        placement = result["placement"]
        assert [o["kind"] for o in placement["ops"]] == ["linear", "linear"]
        for o in placement["ops"]:
            alone = o["alone_ms"]
            assert alone["library"] > 0 and alone["tvm"] > 0
            # The library side is its fastest algorithm (the default call, MKL's packed GEMM…).
            best_library = min(v for k, v in alone.items() if k != "tvm")
            assert (o["where"] == "tvm") == (alone["tvm"] < 0.95 * best_library and placement["per_op"]["kept"]), o
        per_op = placement["per_op"]
        if "per_op_ms" in per_op:
            assert per_op["kept"] == (per_op["per_op_ms"] < per_op["library_ms"])


def test_cancel_then_resume_reuses_records(model, tmp_path):
    from torchtvm.common.errors import Cancelled

    wd = str(tmp_path / "wd")
    with pytest.raises(Cancelled):
        _run(model, wd, trials=16, cancel_after=1)
    kept = len(_records(wd))
    assert 1 <= kept < 16
    result, events, _ = _run(model, wd, trials=16)
    tuning = result["tuning"]
    assert tuning["resumed_records"] == kept
    # The budget counts the records already there: only the rest is measured.
    assert tuning["new_trials"] == len([1 for e, _ in events if e == "tune.trial"])
    assert kept + tuning["new_trials"] == len(_records(wd)) == tuning["trials"]
    assert tuning["new_trials"] == 16 - kept  # exactly the rest of the budget, never a batch over
    # Again with the budget used up: nothing is measured, records are applied.
    again, events, _ = _run(model, wd, trials=tuning["trials"])
    assert again["tuning"]["new_trials"] == 0 and not [1 for e, _ in events if e == "tune.trial"]
    assert again["verification"]["ok"]


def test_kill_mid_tune_then_resume(model, tmp_path):
    wd = str(tmp_path / "wd")
    proc = subprocess.Popen([sys.executable, "-m", "torchtvm.service"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    req = {"id": "1", "method": "tune", "params": {"model": model, "inputs": INPUTS, "trials": 64, "work_dir": wd, "threads": 2}}
    proc.stdin.write(json.dumps(req) + "\n")
    proc.stdin.flush()
    seen = threading.Event()

    def read():
        for line in proc.stdout:
            if '"tune.trial"' in line:
                seen.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(600), "no trial event from the engine"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Simulate a write torn by the kill as well.
    with open(os.path.join(wd, RECORD_FILE), "a") as f:
        f.write('[0, [["Sample')
    kept = len(_records(wd)) - 1
    result, _, _ = _run(model, wd, trials=kept + 4)
    assert result["tuning"]["repaired_lines"] == 1
    assert result["tuning"]["resumed_records"] == kept
    assert result["verification"]["ok"]


def test_database_of_another_model_is_not_applied(model, tmp_path):
    wd = str(tmp_path / "wd")
    _run(model, wd, trials=2, measure=False)
    theirs = len(_records(wd))
    other_shape = [{"name": "x", "dims": [16, 32], "dtype": "float32"}]  # other shapes: other kernels
    result, events, _ = _run(model, wd, trials=2, measure=False, inputs=other_shape)
    t = result["tuning"]
    assert t["resumed_records"] == 0 and t["ignored_records"]["other_kernels"] == theirs
    assert any("none match this model" in n for n in t["notes"]), t["notes"]
    assert any(e == "log" and "none match this model" in d["message"] for e, d in events)
    assert result["verification"]["ok"]


def test_repair_drops_only_bad_lines(tmp_path):
    wd = tmp_path
    (wd / WORKLOAD_FILE).write_text('["123", "abc"]\n["456", "def"]\n["7')
    (wd / RECORD_FILE).write_text('[0, [[], [0.1], {}, []]]\n[5, [[], [0.1], {}, []]]\nnot json\n[1, [[], [0.2], {}, []]]\n')
    assert repair_database(str(wd)) == 3
    assert len((wd / WORKLOAD_FILE).read_text().splitlines()) == 2
    assert len((wd / RECORD_FILE).read_text().splitlines()) == 2
    assert repair_database(str(wd)) == 0


def test_a_full_disk_stops_tuning_with_a_sentence_and_keeps_every_record_written(model, small_disk):
    """TVM appends records through an unchecked ofstream: on a full disk they were lost while the
    tune reported success. The first batch that does not reach the file stops tuning and fails the
    job, and what was written before stays readable."""
    from conftest import fill_disk
    from torchtvm.common.errors import EngineError

    wd = os.path.join(small_disk, "wd")
    ctx = JobContext("t")
    seen = []

    def sink(ev, data):
        if ev == "tune.trial":
            seen.append(data)
            if len(seen) == 2:
                fill_disk(small_disk)  # the disk fills up mid-tune

    ctx._sink = sink
    params = {"model": model, "inputs": INPUTS, "trials": 12, "trials_per_iter": 2, "work_dir": wd, "threads": 2, "measure": False, "out_dir": os.path.join(small_disk, "build")}
    with pytest.raises(EngineError) as e:
        tune_model(params, ctx)
    assert e.value.code == "database_write_failed", e.value.message
    assert "could not be written" in e.value.message and "Free some disk space" in e.value.message and wd in e.value.message
    records = _records(wd)
    assert 2 <= len(records) < 12
    for line in records:
        json.loads(line)  # whole lines only


def test_a_tune_that_runs_out_of_candidates_says_so(tmp_path):
    """An elementwise model has few schedules: MetaSchedule stops long before a 16-trial budget.
    The tune used to report success with 1 trial and no word; it says why now."""
    import torch

    class Elementwise(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2 + 1

    path = str(tmp_path / "elementwise.pt")
    torch.jit.save(torch.jit.trace(Elementwise(), torch.randn(4, 32)), path)
    events = []
    ctx = JobContext("t", lambda ev, data: events.append((ev, data)))
    params = {"model": path, "inputs": INPUTS, "trials": 16, "work_dir": str(tmp_path / "wd"), "threads": 2, "measure": False, "out_dir": str(tmp_path / "build")}
    t = tune_model(params, ctx)["tuning"]
    if t["trials"] >= 16:
        pytest.skip("MetaSchedule found 16 candidates for this kernel here")
    note = [n for n in t["notes"] if n.startswith("Tuning ended after")]
    assert note and f"after {t['trials']} of 16 trial(s)" in note[0] and "no new candidate" in note[0]
    assert any(ev == "log" and d.get("message") == note[0] for ev, d in events)


def test_a_work_dir_swapped_for_a_symlink_mid_tune_is_refused_before_anything_lands_outside(model, tmp_path):
    """`torchtvm serve` passes the folders a job may write in; TVM appends records by name, so the
    tuner checks the work dir again before each batch's records go to the database."""
    from torchtvm.common.errors import EngineError

    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    wd = allowed / "wd"
    ctx = JobContext("t")
    seen = []

    def sink(ev, data):
        if ev == "tune.trial":
            seen.append(data)
            if len(seen) == 2:  # swapped mid-tune: the work dir now leads outside
                os.rename(wd, allowed / "wd-before")
                os.symlink(outside, wd, target_is_directory=True)

    ctx._sink = sink
    params = {"model": model, "inputs": INPUTS, "trials": 12, "trials_per_iter": 2, "work_dir": str(wd), "threads": 2, "measure": False,
              "out_dir": str(allowed / "build"), "write_roots": [str(allowed)]}
    with pytest.raises(EngineError) as e:
        tune_model(params, ctx)
    assert e.value.code == "path_not_allowed" and "tuning work dir" in e.value.message
    assert list(outside.iterdir()) == []
