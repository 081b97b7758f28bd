"""The tuning-log reader: a MetaSchedule work dir (JSON database), ours or one made elsewhere, as
tasks, record counts, best latency, failures and best-so-far curves (the RPC method `tuning_log`,
shown by `torchtvm log` and the app's tuning view).

It counts records by database.py's rules (valid_workload, valid_record, run_ms), the ones the repair
that a resume runs first applies, so the log and a resumed tune agree on which records are usable;
its estimate is the tune's (tune/estimate.py: best record or default schedule, or the library kernel
where faster, from the times the sidecar keeps), and it lists the work dir's run records (runs.py),
so it shows the same numbers as the Tune page and the CLI for the same work dir.
Damaged lines are skipped and counted, never fatal. Reads files only: it imports neither TVM nor
torch, so the server answers it while a job runs (rpc_server.QUICK_METHODS).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re

from torchtvm.common.errors import EngineError
from torchtvm.tune import estimate as _estimate
from torchtvm.tune.database import (
    RECORD_FILE,
    WORKLOAD_FILE,
    read_lines,
    read_measured_on,
    read_sidecar,
    record_key,
    run_ms,
    valid_record,
    valid_record_shape,
    valid_workload,
)
from torchtvm.tune.runs import read_runs

MAX_REASONS = 10
# TVM's JSON graph keeps a PrimFunc's global symbol as a string node after its key.
_GLOBAL_SYMBOL = re.compile(r'"global_symbol"[\s\S]{0,400}?"data":\s*"([A-Za-z_][\w.]*)"', re.ASCII)


def _lines(path: str) -> list[str]:
    try:
        return read_lines(path)
    except OSError as e:
        why = "it is a folder, not a file" if isinstance(e, IsADirectoryError) else (e.strerror or str(e))
        raise EngineError("unreadable", f"{path} cannot be read ({why}); give a MetaSchedule work dir whose database files are readable.") from None


def _sidecar(work_dir: str) -> tuple[str | None, dict[str, dict]]:
    """The workbench's own task names and weights, by workload hash; malformed entries are ignored."""
    data = read_sidecar(work_dir)
    model = data.get("model")
    raw = data.get("workloads")
    workloads: dict[str, dict] = {}
    if isinstance(raw, dict):
        for h, v in raw.items():
            if not isinstance(v, dict):
                continue
            name, weight = v.get("name"), v.get("weight")
            entry: dict = {}
            if isinstance(name, str) and name:
                entry["name"] = name
            if isinstance(weight, (int, float)) and not isinstance(weight, bool) and _finite(weight):
                entry["weight"] = weight
            for k in ("default_ms", "library_ms"):
                t = v.get(k)
                if isinstance(t, (int, float)) and not isinstance(t, bool) and _finite(t) and t > 0:
                    entry[k] = float(t)
            workloads[h] = entry
    return (model if isinstance(model, str) else None), workloads


def _finite(v) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def parsed_name(b64: str) -> str | None:
    """The PrimFunc's global symbol from a serialized workload, when practical (not "main")."""
    try:
        text = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=False).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None
    m = _GLOBAL_SYMBOL.search(text)
    return m.group(1) if m and m.group(1) != "main" else None


def _json(line: str):
    """(value, None) or (None, why it is not JSON)."""
    try:
        return json.loads(line), None
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as e:
        return None, f"not JSON ({str(e)[:120]})"


def _target_text(target) -> str:
    return target if isinstance(target, str) else json.dumps(target, separators=(",", ":"), ensure_ascii=False, default=str)


def read_tuning_log(work_dir: str) -> dict:
    """{dir, tasks[{workload, hash, name, weight, records, failures, best_ms, curve}], records,
    failures, estimated_ms, skipped{workload_lines, record_lines, reasons}, targets, model, named_by}.

    Raises EngineError not_found (not a folder), not_a_tuning_dir (a database file is missing) or
    unreadable (a database file cannot be read)."""
    d = os.path.abspath(work_dir)
    if not os.path.isdir(d):
        raise EngineError("not_found", f"{d} is not a folder; give a MetaSchedule work dir.")
    w_path, r_path = os.path.join(d, WORKLOAD_FILE), os.path.join(d, RECORD_FILE)
    missing = [os.path.basename(p) for p in (w_path, r_path) if not os.path.exists(p)]
    if missing:
        verb = "are" if len(missing) > 1 else "is"
        raise EngineError("not_a_tuning_dir", f"{d} is not a MetaSchedule work dir: {' and '.join(missing)} {verb} missing.")

    model, side = _sidecar(d)
    reasons: list[str] = []
    bad_w = bad_r = 0
    tasks: list[dict] = []
    named_by = "index"
    damaged: set[int] = set()

    def reason(text: str) -> None:
        if len(reasons) < MAX_REASONS:
            reasons.append(text)

    for i, line in enumerate(_lines(w_path)):
        v, why = _json(line)
        b64 = ""
        if why is None and not valid_workload(v):
            why = "not [hash, module]"
        if why is None:
            h, b64 = str(v[0]), v[1]
        else:
            bad_w += 1
            reason(f"{WORKLOAD_FILE} line {i + 1}: {why}")
            h = f"?{i}"
            damaged.add(i)
        # Records refer to workloads by line index, so a damaged line still takes its slot.
        known = side.get(h, {})
        name = known.get("name")
        if name:
            named_by = "workbench"
        if not name and b64:
            name = parsed_name(b64)
            if name and named_by == "index":
                named_by = "parsed"
        tasks.append({"workload": i, "hash": h, "name": name or f"workload {i}", "weight": known.get("weight"), "records": 0, "failures": 0, "best_ms": None,
                      "default_ms": known.get("default_ms"), "library_ms": known.get("library_ms"), "curve": []})

    targets: dict[str, None] = {}  # insertion-ordered set
    records = failures = 0
    where = read_measured_on(d)
    machines: dict[str, dict] = {}
    for i, line in enumerate(_lines(r_path)):
        v, why = _json(line)
        if why is None:
            if not valid_record_shape(v):
                why = "not [workload, record]"
            elif not 0 <= v[0] < len(tasks):
                why = f"workload {v[0]} does not exist"
            elif v[0] in damaged:
                why = f"its workload (line {v[0] + 1}) is damaged, so the record cannot be used"
            elif not valid_record(v):
                why = "not a MetaSchedule record [trace, run_secs, target, args]"
        if why is not None:
            bad_r += 1
            reason(f"{RECORD_FILE} line {i + 1}: {why}")
            continue
        task = tasks[v[0]]
        server = where.get(record_key(line)) if where else None
        target = v[1][2]
        if target is not None:
            targets[_target_text(target)] = None
        records += 1
        task["records"] += 1
        ms = run_ms(v[1][1])
        if ms is None:
            failures += 1
            task["failures"] += 1
        elif task["best_ms"] is None or ms < task["best_ms"]:
            task["best_ms"] = ms
        task["curve"].append(task["best_ms"])
        if where:
            # Where it was measured (a tune over an RPC tracker); "this machine" when not noted.
            m = machines.setdefault(server or "this machine", {"server": server or "this machine", "records": 0, "failures": 0, "best_ms": {}})
            m["records"] += 1
            if ms is None:
                m["failures"] += 1
            task.setdefault("servers", {})[server or "this machine"] = task.get("servers", {}).get(server or "this machine", 0) + 1

    # The tune's estimate over this model's tasks (those the workbench weighed): the same
    # definition as the Tune page's, from the default schedules and library times it kept.
    weighted = [t for t in tasks if t["weight"] is not None]
    estimated = _estimate.estimate([t["weight"] for t in weighted], [t["best_ms"] for t in weighted], [t["default_ms"] for t in weighted], [t["library_ms"] for t in weighted]) if weighted else None
    return {
        "dir": d,
        "tasks": tasks,
        "records": records,
        "failures": failures,
        "estimated_ms": estimated,
        "skipped": {"workload_lines": bad_w, "record_lines": bad_r, "reasons": reasons},
        "targets": list(targets),
        "model": model,
        "named_by": named_by,
        # Per measuring server, when the work dir was tuned over an RPC tracker: records and
        # failures each measured (tasks[i].servers has the split per task).
        "machines": [{k: v for k, v in m.items() if k != "best_ms"} for m in machines.values()],
        # One record per tuning run the workbench made here, oldest first (runs.py).
        "runs": read_runs(d),
    }

