"""The tuning work dir: MetaSchedule's JSON database (append-only JSON lines) and the workbench's
sidecar beside it.

A kill can leave a torn last line, which MetaSchedule refuses to load, so damaged lines are dropped
before opening (repair), renumbering the records after a dropped workload line so every good record
keeps its workload. `workbench_tasks.json` beside it maps workload hash -> task name and weight (and
the default schedule's time), for the log reader and for resumes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time

from torchtvm.common.atomic_write import write_text_atomic
from torchtvm.common.errors import EngineError

FAILED_SECS = 1e10  # MetaSchedule's run_secs for a failed trial
SIDECAR = "workbench_tasks.json"
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
# Where each record was measured (a tune over an RPC tracker): one JSON line per record,
# {"record": record_key(line), "server": name}. Keyed by the record line's hash, not its index, so
# a repair that drops a damaged line keeps every other record's machine.
MEASURED_ON_FILE = "database_measured_on.json"


# ---- database files -----------------------------------------------------------------------------

def repair_database(work_dir: str) -> int:
    """Repair the work dir's database (see repair); return how many lines were dropped."""
    return repair(work_dir)["dropped_lines"]


_REPAIR_JOURNAL = "database_repair.journal"


def _finish_journal(work_dir: str) -> None:
    """Complete a repair that was killed between its two renames (both files are replaced
    together or the indices would disagree)."""
    jpath = os.path.join(work_dir, _REPAIR_JOURNAL)
    try:
        with open(jpath, encoding="utf-8") as f:
            moves = json.load(f)
    except (OSError, ValueError):
        return
    for tmp, final in moves:
        if os.path.exists(tmp):
            os.replace(tmp, final)
    os.unlink(jpath)


def read_lines(path: str) -> list[str]:
    """The file's non-blank lines ([] when it does not exist); undecodable bytes become U+FFFD. Only
    "\n" ends a line, as in MetaSchedule's reader (a stray "\r" does not split one)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        text = f.read()
    # MetaSchedule numbers workloads by their non-blank lines; so does this (and the log reader).
    return [l for l in text.split("\n") if l.strip()]


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def valid_workload(o) -> bool:
    """A workload line: [hash, base64 module] (Workload.as_json)."""
    return isinstance(o, list) and len(o) == 2 and isinstance(o[0], (str, int)) and not isinstance(o[0], bool) and isinstance(o[1], str)


def valid_record_shape(o) -> bool:
    """The outside of a record line: [workload index, [...]]."""
    return isinstance(o, list) and len(o) == 2 and is_int(o[0]) and isinstance(o[1], list)


def valid_record(o) -> bool:
    """A record line: [workload index, [trace, run_secs | null, target, args_info]]
    (TuningRecord.as_json). The repair keeps exactly these, and the log reader (tune/log.py) counts
    exactly these as records."""
    if not valid_record_shape(o):
        return False
    rec = o[1]
    if len(rec) < 4:
        return False
    run_secs = rec[1]
    return run_secs is None or (isinstance(run_secs, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in run_secs))


def parse_line(line: str):
    """One database line as JSON; None when it is not JSON."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def repair(work_dir: str) -> dict:
    """Make the database loadable while keeping every good record.

    A kill can tear the last line of either file; a hand edit or a disk error can damage any line.
    Records name their workload by line number, so dropping a damaged workload line would move
    every later record onto the wrong workload: instead the records are renumbered. Records whose
    workload line is damaged cannot be used (their kernel is unknown) and records that do not parse
    are dropped. Nothing is destroyed: the original files are copied to `damaged-<time>/` first.
    Refuses (EngineError) when most workload lines are damaged, which is not a MetaSchedule database.

    Returns {"dropped_lines", "dropped_workloads", "dropped_records", "orphaned_records",
    "renumbered_records", "backup", "message"} (message None when nothing was wrong)."""
    _finish_journal(work_dir)
    wpath, rpath = os.path.join(work_dir, WORKLOAD_FILE), os.path.join(work_dir, RECORD_FILE)
    wlines, rlines = read_lines(wpath), read_lines(rpath)
    bad_w = [i for i, l in enumerate(wlines) if not valid_workload(parse_line(l))]
    report: dict[str, int | str | None] = {"dropped_lines": 0, "dropped_workloads": len(bad_w), "dropped_records": 0, "orphaned_records": 0, "renumbered_records": 0, "backup": None, "message": None}
    if bad_w and len(bad_w) * 2 > len(wlines) and len(wlines) > 2:
        raise EngineError(
            "bad_database",
            f"{len(bad_w)} of the {len(wlines)} workload lines in {wpath} are damaged, so it is not a usable MetaSchedule database; "
            "nothing was changed. Use another --work-dir, or move these files away.",
        )
    # old workload index -> new index (None: damaged)
    remap: dict[int, int | None] = {}
    shift = 0
    bad_set = set(bad_w)
    for i in range(len(wlines)):
        if i in bad_set:
            remap[i], shift = None, shift + 1
        else:
            remap[i] = i - shift
    good_records, dropped_r, orphaned, renumbered = [], 0, 0, 0
    for line in rlines:
        o = parse_line(line)
        if not valid_record(o):
            dropped_r += 1
            continue
        new = remap.get(o[0]) if 0 <= o[0] < len(wlines) else None
        if new is None:
            orphaned += 1  # its workload line is damaged or missing: the kernel it tuned is unknown
            continue
        if new != o[0]:
            o[0] = new
            renumbered += 1
            line = json.dumps(o, separators=(",", ":"))
        good_records.append(line)
    report.update(dropped_records=dropped_r, orphaned_records=orphaned, renumbered_records=renumbered, dropped_lines=len(bad_w) + dropped_r + orphaned)
    if not report["dropped_lines"]:
        return report
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = os.path.join(work_dir, f"damaged-{stamp}-{os.getpid()}")
    os.makedirs(backup, exist_ok=True)
    for path in (wpath, rpath):
        if os.path.exists(path):
            shutil.copy2(path, os.path.join(backup, os.path.basename(path)))
    moves = []
    for path, lines in ((wpath, [l for i, l in enumerate(wlines) if i not in bad_set]), (rpath, good_records)):
        tmp = f"{path}.repair-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(l + "\n" for l in lines))
            f.flush()
            os.fsync(f.fileno())
        moves.append((tmp, path))
    write_text_atomic(os.path.join(work_dir, _REPAIR_JOURNAL), json.dumps(moves))
    _finish_journal(work_dir)
    parts = []
    if bad_w:
        parts.append(f"{len(bad_w)} damaged workload line(s)")
    if orphaned:
        parts.append(f"{orphaned} record(s) of those damaged workloads")
    if dropped_r:
        parts.append(f"{dropped_r} damaged record line(s)")
    kept = f"; {renumbered} later record(s) were renumbered to their workloads" if renumbered else ""
    report["backup"] = backup
    report["message"] = f"Dropped {', '.join(parts)} from the tuning database in {work_dir}{kept}; every other record was kept. The original files are in {backup}."
    return report


def read_sidecar(work_dir: str) -> dict:
    try:
        with open(os.path.join(work_dir, SIDECAR), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def write_sidecar(work_dir: str, entries: dict, model: str | None, target: dict) -> None:
    data = read_sidecar(work_dir)
    workloads = data.get("workloads")
    tasks = workloads if isinstance(workloads, dict) else {}
    tasks.update(entries)
    data.update({"format": 1, "workloads": tasks, "model": model, "target": target, "updated": time.time()})
    write_text_atomic(os.path.join(work_dir, SIDECAR), json.dumps(data, indent=1))


def record_key(line: str | bytes) -> str:
    """The key of a record line in MEASURED_ON_FILE: its text's SHA-256 (the first 20 hex digits)."""
    import hashlib

    data = line if isinstance(line, bytes) else line.encode("utf-8")
    return hashlib.sha256(data.strip()).hexdigest()[:20]


def append_measured_on(work_dir: str, entries: list[tuple[str, str | None]]) -> None:
    """Append (record_key, server) lines; a record whose server is unknown is not written."""
    lines = "".join(json.dumps({"record": k, "server": s}) + "\n" for k, s in entries if s)
    if lines:
        with open(os.path.join(work_dir, MEASURED_ON_FILE), "a", encoding="utf-8") as f:
            f.write(lines)


def read_measured_on(work_dir: str) -> dict[str, str]:
    """record_key -> the server that measured it (empty for a tune on this machine)."""
    out: dict[str, str] = {}
    for line in read_lines(os.path.join(work_dir, MEASURED_ON_FILE)):
        try:
            o = json.loads(line)
        except ValueError:
            continue  # a torn last line (a kill mid-write): that record's machine is unknown
        if isinstance(o, dict) and isinstance(o.get("record"), str) and isinstance(o.get("server"), str):
            out[o["record"]] = o["server"]
    return out


def _secs(v) -> float:
    try:
        return float(v)
    except OverflowError:  # an integer too large for a float
        return math.inf if v > 0 else -math.inf


def run_ms(run_secs) -> float | None:
    """Median-free mean of a record's run_secs in ms; None for a failed trial: no times, a time of
    FAILED_SECS, or times no real run gives (negative, not finite, a mean that overflows)."""
    vals = [_secs(v) for v in (run_secs or [])]
    if not vals or any(not math.isfinite(v) or v < 0 or v >= FAILED_SECS * 0.99 for v in vals):
        return None
    mean = sum(vals) / len(vals) * 1e3
    return mean if math.isfinite(mean) else None


def target_key(target) -> str:
    """Targets compare by their JSON config (kind, mcpu, features...), whatever the key order."""
    try:
        cfg = target.export() if hasattr(target, "export") else json.loads(str(target))
        cfg = {k: v for k, v in cfg.items() if k not in ("tag",)}
        return json.dumps(cfg, sort_keys=True, default=str)
    except Exception:
        return str(target)


def scan(database, task_mods, task_of: dict, key: str):
    """Sort the database's records: this model's kernels on this target (counted per task, with
    the best latency), other kernels, and this model's kernels tuned for another target."""
    import tvm_ffi

    existing = [0] * len(task_mods)
    best: list[float | None] = [None] * len(task_mods)
    matched, foreign, mismatched = [], 0, 0
    which: dict = {}
    for rec in database.get_all_tuning_records():
        wl = rec.workload
        if wl not in which:
            i = task_of.get(str(tvm_ffi.structural_hash(wl.mod)))
            which[wl] = i if i is not None and tvm_ffi.structural_equal(wl.mod, task_mods[i]) else None
        i = which[wl]
        if i is None:
            foreign += 1
            continue
        if target_key(rec.target) != key:
            mismatched += 1
            continue
        existing[i] += 1
        matched.append(rec)
        m = run_ms(rec.run_secs)
        if m is not None and (best[i] is None or m < best[i]):
            best[i] = m
    return existing, best, matched, foreign, mismatched
