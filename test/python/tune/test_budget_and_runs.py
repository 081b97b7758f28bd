"""The trial budget is exact (never exceeded, whatever the batch size), and every tuning run keeps
one record in the work dir (tune/runs.py) whose figures the result, the events and the log reader
all agree with; a resume is a new run that starts where the one it resumed ended. Tiny model, few
trials (the two-matmul model of conftest.two_op_model)."""

import os

import pytest

from torchtvm.common.errors import Cancelled
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import tune_model
from torchtvm.tune.database import RECORD_FILE, read_sidecar
from torchtvm.tune.log import read_tuning_log
from torchtvm.tune.runs import read_runs

INPUTS = [{"name": "x", "dims": [4, 32], "dtype": "float32"}]


def _records(work_dir):
    with open(os.path.join(work_dir, RECORD_FILE)) as f:
        return [l for l in f if l.strip()]


def _run(model, work_dir, job="t", cancel_after=None, **params):
    events = []
    ctx = JobContext(job, None)

    def sink(ev, data):
        events.append((ev, data))
        if cancel_after is not None and ev == "tune.trial" and data["total_trials"] >= cancel_after:
            ctx.cancel()

    ctx._sink = sink
    p = {"model": model, "inputs": INPUTS, "work_dir": work_dir, "threads": 2, "measure": False, "out_dir": os.path.join(work_dir, "..", "build"), **params}
    try:
        return tune_model(p, ctx), events
    except Cancelled:
        return None, events


def _trials(events):
    return [d for e, d in events if e == "tune.trial"]


def test_a_budget_is_never_exceeded_by_a_batch(two_op_model, tmp_path):
    """Batches of 4 against a budget of 5: the second batch is cut to 1 (it was 24 -> 25)."""
    wd = str(tmp_path / "wd")
    result, events = _run(two_op_model, wd, trials=5, trials_per_iter=4, measure=True)
    trials = _trials(events)
    assert len(trials) == 5 == result["tuning"]["trials"] == result["tuning"]["new_trials"] == len(_records(wd))
    assert [d["total_trials"] for d in trials] == [1, 2, 3, 4, 5]
    assert all(isinstance(d["time_s"], float) for d in trials)

    # One record of the run, and everyone's figures from it.
    [tasks_event] = [d for e, d in events if e == "tune.tasks"]
    [run] = read_runs(wd)
    tuning = result["tuning"]
    assert run["id"] == "t" and run["state"] == "measured"
    assert (run["budget"], run["resumed"], run["trials"], run["total"]) == (5, 0, 5, 5)
    assert tasks_event["budget"] == 5 and tasks_event["resumed_records"] == 0
    assert run["first_estimate_ms"] == tasks_event["estimated_ms"] == tuning["first_estimate_ms"]
    assert run["estimate_ms"] == pytest.approx(tuning["estimated_ms"]) == trials[-1]["estimated_total_ms"]
    assert run["measured_ms"] == result["latency_ms"]["tvm"]["p50"]
    assert tuning["estimated_ms"] <= tuning["first_estimate_ms"]
    # The log reader: same trial count, same estimate (the tune's definition), the same run record.
    log = read_tuning_log(wd)
    assert log["records"] == 5
    assert log["estimated_ms"] == pytest.approx(tuning["estimated_ms"])
    assert log["runs"] == [run]
    # The measured latency says at which sizes it was measured (none are symbolic here).
    assert result["latency_ms"]["sizes"] == {}


def test_trials_per_task_is_exact_too(two_op_model, tmp_path):
    wd = str(tmp_path / "wd")
    result, events = _run(two_op_model, wd, trials=100, trials_per_task=3, trials_per_iter=4)
    per_task = {}
    for d in _trials(events):
        per_task[d["task_id"]] = d["trial"]
    assert max(per_task.values()) <= 3
    assert result["tuning"]["trials"] == len(_records(wd)) <= 6


def test_a_resume_is_a_new_run_that_starts_where_the_last_ended(two_op_model, tmp_path):
    wd = str(tmp_path / "wd")
    cancelled, events1 = _run(two_op_model, wd, job="tune-1-a", trials=8, trials_per_iter=2, cancel_after=2)
    assert cancelled is None
    kept = len(_records(wd))
    [first] = read_runs(wd)
    assert first["state"] == "cancelled" and first["trials"] == kept == len(_trials(events1)) and first["budget"] == 8
    library = read_sidecar(wd)["workloads"]

    result, events2 = _run(two_op_model, wd, job="tune-2-b", trials=8, trials_per_iter=2)
    first_after, second = read_runs(wd)
    assert first_after == first  # the run it resumed keeps its own record
    assert second["id"] == "tune-2-b" and second["resumed"] == kept
    assert second["trials"] == 8 - kept == len(_trials(events2)) and second["total"] == 8 == len(_records(wd))
    # The library times and default schedules were kept, not timed again: the resume's first
    # estimate is exactly where the cancelled run ended, and it moves only with tuned kernels.
    assert read_sidecar(wd)["workloads"] == library
    assert second["first_estimate_ms"] == first["estimate_ms"]
    [tasks2] = [d for e, d in events2 if e == "tune.tasks"]
    assert tasks2["resumed_records"] == kept and tasks2["estimated_ms"] == first["estimate_ms"]
    assert sum(t["records"] for t in tasks2["tasks"]) == kept
    ests = [first["estimate_ms"]] + [d["estimated_total_ms"] for d in _trials(events2)]
    assert ests == sorted(ests, reverse=True), "the estimate only falls"
    assert result["tuning"]["run"]["id"] == "tune-2-b"
