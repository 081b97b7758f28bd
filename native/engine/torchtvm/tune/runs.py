"""One record per tuning run, kept in the work dir (`workbench_runs.json`): what the run was given
(its budget), what it started from (the records already there and the estimate they give), what it
did (its own trials and errors), where it ended (the best estimate) and, once its build was
measured, the measured latency. The Tune page, the CLI, the runs list and the tuning-log reader all
show these figures from this one record (app/contract/tune-record.ts has the same fields). A resume
is a new run with its own record; its first estimate is where the run it resumed ended.

Written atomically (temp file + rename) after every batch, so a kill leaves the last batch's record.
"""

from __future__ import annotations

import json
import os
import time

from torchtvm.common import write_roots
from torchtvm.common.atomic_write import write_text_atomic
from torchtvm.common.errors import EngineError

RUNS_FILE = "workbench_runs.json"
# Older runs beyond this many are dropped from the file (the database keeps every record).
MAX_RUNS = 200


def read_runs(work_dir: str) -> list[dict]:
    """The work dir's run records, oldest first ([] when there are none or the file is damaged)."""
    try:
        with open(os.path.join(work_dir, RUNS_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return []
    runs = data.get("runs") if isinstance(data, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def write_run(work_dir: str, record: dict) -> None:
    """Adds or replaces (by id) one run's record. Raises EngineError path_not_allowed where the work
    dir now resolves outside the job's folders (a folder swapped for a symlink mid-tune), OSError
    where it cannot be written."""
    path = os.path.join(work_dir, RUNS_FILE)
    write_roots.check(path, "tuning work dir")
    runs = [r for r in read_runs(work_dir) if r.get("id") != record.get("id")]
    runs.append(record)
    write_text_atomic(path, json.dumps({"format": 1, "runs": runs[-MAX_RUNS:]}, indent=1))


def new_run(run_id: str, budget: int | None, per_task: int | None, resumed: int, first_estimate: float | None) -> dict:
    return {
        "id": run_id,
        "state": "running",
        "budget": budget,
        "per_task": per_task,
        "resumed": resumed,
        "trials": 0,
        "total": resumed,
        "errors": 0,
        "first_estimate_ms": first_estimate,
        "estimate_ms": first_estimate,
        "measured_ms": None,
        "started_at": time.time(),
        "ended_at": None,
    }


def note_measured(work_dir: str, run_id: str, measured_ms: float | None) -> None:
    """The tuned build's measured p50, into the record of the run that made it (the latest run of
    job `run_id`; ids repeat as "<id>#2" when a job id ran before), if there is one."""
    for r in reversed(read_runs(work_dir)):
        rid = str(r.get("id"))
        if rid == run_id or rid.startswith(f"{run_id}#"):
            r.update(measured_ms=measured_ms, state="measured")
            try:
                write_run(work_dir, r)
            except (OSError, EngineError):
                pass  # the record is a report; the build does not depend on it
            return
