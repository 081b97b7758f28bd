"""The tune job: MetaSchedule over the imported model, every measured trial streamed as an event,
then a rebuild with the tuning database, verification and measured latency.

Why a custom task scheduler and measure callback instead of `tune_relax`:
- events: the callback sees every batch of measured candidates (task, latency or error) and emits
  one `tune.trial` per candidate with the task's best-so-far and the estimated end-to-end latency
  (sum over tasks of weight x best latency);
- cancel: MetaSchedule's C++ loop cannot be interrupted, but it asks the scheduler for the next
  task between batches. Ours joins every running batch (so finished trials reach the database),
  then answers -1 ("no task left") once the job is cancelled; the builder also checks between
  small chunks so a cancel is seen within seconds, and candidates it skipped are never recorded;
- resume: MetaSchedule 0.27's evolutionary search does not treat database records as measured
  (a TODO in evolutionary_search.cc), so the budget counts existing records: `trials` is the total
  for the work dir, and a task's records count towards `trials_per_task`. The database's best
  records still seed the search, so tuning continues from where it stopped.

The work dir is MetaSchedule's JSON database (append-only JSON lines). A kill can leave a torn last
line, which MetaSchedule refuses to load, so damaged lines are dropped before opening (repair),
renumbering the records after a dropped workload line so every good record keeps its workload.
`workbench_tasks.json` beside it maps workload hash -> task name and weight, for the log reader.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from .errors import Cancelled, EngineError
from .jobs import JobContext

FAILED_SECS = 1e10  # MetaSchedule's run_secs for a failed trial
CANCELLED_MSG = "torchtvm: skipped, the job was cancelled"
SIDECAR = "workbench_tasks.json"
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"


# ---- database files -----------------------------------------------------------------------------

def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def _read_lines(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    # MetaSchedule numbers workloads by their non-blank lines; so does this (and the log reader).
    return [l for l in text.split("\n") if l.strip()]


def _valid_workload(o) -> bool:
    return isinstance(o, list) and len(o) == 2 and isinstance(o[0], (str, int)) and not isinstance(o[0], bool) and isinstance(o[1], str)


def _valid_record(o) -> bool:
    # [workload index, [trace, run_secs | null, target, args_info]] (TuningRecord.as_json)
    if not (isinstance(o, list) and len(o) == 2 and isinstance(o[0], int) and not isinstance(o[0], bool) and isinstance(o[1], list)):
        return False
    rec = o[1]
    if len(rec) < 4:
        return False
    run_secs = rec[1]
    return run_secs is None or (isinstance(run_secs, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in run_secs))


def _parse(line: str):
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
    wlines, rlines = _read_lines(wpath), _read_lines(rpath)
    bad_w = [i for i, l in enumerate(wlines) if not _valid_workload(_parse(l))]
    report = {"dropped_lines": 0, "dropped_workloads": len(bad_w), "dropped_records": 0, "orphaned_records": 0, "renumbered_records": 0, "backup": None, "message": None}
    if bad_w and len(bad_w) * 2 > len(wlines) and len(wlines) > 2:
        raise EngineError(
            "bad_database",
            f"{len(bad_w)} of the {len(wlines)} workload lines in {wpath} are damaged, so it is not a usable MetaSchedule database; "
            "nothing was changed. Use another --work-dir, or move these files away.",
        )
    # old workload index -> new index (None: damaged)
    remap, shift = {}, 0
    bad_set = set(bad_w)
    for i in range(len(wlines)):
        if i in bad_set:
            remap[i], shift = None, shift + 1
        else:
            remap[i] = i - shift
    good_records, dropped_r, orphaned, renumbered = [], 0, 0, 0
    for line in rlines:
        o = _parse(line)
        if not _valid_record(o):
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
    _atomic_write(os.path.join(work_dir, _REPAIR_JOURNAL), json.dumps(moves))
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


def _read_sidecar(work_dir: str) -> dict:
    try:
        with open(os.path.join(work_dir, SIDECAR), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_sidecar(work_dir: str, entries: dict, model: str | None, target: dict) -> None:
    data = _read_sidecar(work_dir)
    tasks = data.get("workloads") if isinstance(data.get("workloads"), dict) else {}
    tasks.update(entries)
    data.update({"format": 1, "workloads": tasks, "model": model, "target": target, "updated": time.time()})
    _atomic_write(os.path.join(work_dir, SIDECAR), json.dumps(data, indent=1))


def _run_ms(run_secs) -> float | None:
    """Median-free mean of a record's run_secs in ms; None for a failed trial."""
    vals = [float(v) for v in (run_secs or [])]
    if not vals or any(v >= FAILED_SECS * 0.99 for v in vals):
        return None
    return sum(vals) / len(vals) * 1e3


def _target_key(target) -> str:
    """Targets compare by their JSON config (kind, mcpu, features...), whatever the key order."""
    try:
        cfg = target.export() if hasattr(target, "export") else json.loads(str(target))
        cfg = {k: v for k, v in cfg.items() if k not in ("tag",)}
        return json.dumps(cfg, sort_keys=True, default=str)
    except Exception:
        return str(target)


# ---- MetaSchedule hooks -------------------------------------------------------------------------

class _State:
    """What the scheduler and the callback share: per-task counts, bests, cancellation."""

    def __init__(self, ctx: JobContext, names, weights, existing, best, budget, per_task):
        self.ctx = ctx
        self.names = names
        self.weights = weights
        self.trials = list(existing)  # per task, existing records included
        self.errors = [0] * len(names)
        self.best = list(best)  # per task ms or None
        self.new_trials = 0
        self.total = sum(existing)
        self.budget = budget  # total for the work dir (existing records count)
        self.per_task = per_task
        self.curve: list[dict] = []
        self.defaults: list[float | None] = [None] * len(names)  # the default schedule's ms per task
        # Per task that is one library candidate's kernel: the library call's ms. The build runs
        # whichever is faster (per-op placement), so that is all a tuned record can be worth.
        self.library: list[float | None] = [None] * len(names)

    def beats_default(self, i: int, ms: float | None) -> bool:
        """Whether a record timed `ms` is applied to task i: only when it beats the default schedule."""
        return ms is not None and (self.defaults[i] is None or ms < self.defaults[i])

    def applied(self, i: int) -> float | None:
        """What the build will run for task i: its best record if that beats the default schedule."""
        return self.best[i] if self.beats_default(i, self.best[i]) else self.defaults[i]

    def placed(self, i: int) -> float | None:
        """What the build is expected to run for task i: its applied kernel, or the library call
        where that is faster."""
        a, lib = self.applied(i), self.library[i]
        return a if lib is None or a is None else min(a, lib)

    def estimate(self) -> float | None:
        per_task = [self.placed(i) for i in range(len(self.names))]
        if any(v is None for v in per_task):
            return None
        return sum(w * v for w, v in zip(self.weights, per_task))


def _make_hooks(state: _State, builder_impl, workers: int):
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.measure_callback import AddToDatabase, PyMeasureCallback, RemoveBuildArtifact, UpdateCostModel
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler
    from tvm.ir.utils import derived_object

    @derived_object
    class CancellableBuilder(PyBuilder):
        """Builds in small chunks; once cancelled, the rest come back as (unrecorded) errors."""

        def __init__(self, inner, chunk):
            super().__init__()
            self.inner = inner
            self.chunk = chunk

        def build(self, build_inputs):
            out = []
            for i in range(0, len(build_inputs), self.chunk):
                part = build_inputs[i:i + self.chunk]
                if state.ctx.cancelled:
                    out.extend(BuilderResult(None, CANCELLED_MSG) for _ in part)
                else:
                    out.extend(self.inner.build(part))
            return out

    @derived_object
    class WorkbenchScheduler(PyTaskScheduler):
        """Joins every running batch, stops on cancel or budget, picks the task whose weighted
        latency per trial spent is largest (untried tasks first)."""

        def __init__(self):
            super().__init__()
            self.round = 0

        def next_task_id(self) -> int:
            ts = self._outer()
            n = len(ts.tasks_)
            for i in range(n):
                t = ts.tasks_[i]
                if not t.is_terminated and t.runner_futures is not None:
                    ts.join_running_task(i)
            stop = state.ctx.cancelled or (state.budget is not None and state.total >= state.budget)
            alive = []
            for i in range(n):
                if ts.tasks_[i].is_terminated:
                    continue
                if stop or (state.per_task is not None and state.trials[i] >= state.per_task):
                    ts.terminate_task(i)
                else:
                    alive.append(i)
            if not alive:
                return -1
            untried = [i for i in alive if state.trials[i] == 0]
            if untried:
                return untried[0]
            self.round += 1

            def score(i):
                b = state.best[i]
                if b is None:  # every trial failed so far: try it now and then
                    return -1.0 if self.round % 4 else float("inf")
                lib = state.library[i]
                if lib is not None and b > lib:
                    # The library kernel already does this op in `lib`: trials here pay off only
                    # as the kernel comes near it, so the ops TVM keeps go first.
                    b = lib * lib / b
                return state.weights[i] * b / max(1, state.trials[i])

            return max(alive, key=score)

    @derived_object
    class TrialEvents(PyMeasureCallback):
        """Records real results (database, cost model) and emits one event per measured trial."""

        def __init__(self):
            super().__init__()
            self.add = AddToDatabase()
            self.update = UpdateCostModel()
            self.remove = RemoveBuildArtifact()

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            keep = [i for i, b in enumerate(builder_results) if not (b.error_msg and str(b.error_msg) == CANCELLED_MSG)]
            if keep:
                c = [measure_candidates[i] for i in keep]
                b = [builder_results[i] for i in keep]
                r = [runner_results[i] for i in keep]
                for cb in (self.add, self.update, self.remove):
                    cb.apply(task_scheduler, task_id, c, b, r)
            else:
                self.remove.apply(task_scheduler, task_id, measure_candidates, builder_results, runner_results)
            for i in keep:
                b, r = builder_results[i], runner_results[i]
                err = None
                if b.error_msg:
                    err = "build: " + _first_line(str(b.error_msg))
                elif r.error_msg:
                    err = "run: " + _first_line(str(r.error_msg))
                ms_ = None if err else _run_ms(r.run_secs)
                if err is None and ms_ is None:
                    err = "run: no valid timing"
                state.trials[task_id] += 1
                state.total += 1
                state.new_trials += 1
                if err:
                    state.errors[task_id] += 1
                elif state.best[task_id] is None or ms_ < state.best[task_id]:
                    state.best[task_id] = ms_
                est = state.estimate()
                data = {
                    "task_id": int(task_id),
                    "task_name": state.names[task_id],
                    "trial": state.trials[task_id],
                    "total_trials": state.total,
                    "latency_ms": ms_,
                    "error": err,
                    "best_ms": state.best[task_id],
                    "estimated_total_ms": est,
                }
                state.curve.append({"total_trials": state.total, "estimated_ms": est})
                state.ctx.emit("tune.trial", data)

    del ms
    return CancellableBuilder(builder_impl, workers), WorkbenchScheduler(), TrialEvents()


def _measure_defaults(task_mods, info, local_builder, runner) -> list[float | None]:
    """Time each kernel under the default CPU schedule (cpu_schedule), with MetaSchedule's own
    builder and runner, so that records are compared with what an untuned build runs."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from .cpu_schedule import ParallelVectorize

    rule = ParallelVectorize()
    inputs = []
    for mod in task_mods:
        sch = rule.apply(mod["main"], info.target, False)
        inputs.append(BuilderInput(sch.mod if sch is not None else mod, info.target))
    built = local_builder.build(inputs)
    todo = [(i, b) for i, b in enumerate(built) if b.error_msg is None]
    futures = runner.run([RunnerInput(b.artifact_path, "cpu", ArgInfo.from_prim_func(task_mods[i]["main"])) for i, b in todo])
    out: list[float | None] = [None] * len(task_mods)
    for (i, b), fut in zip(todo, futures):
        r = fut.result()
        out[i] = None if r.error_msg else _run_ms(r.run_secs)
        shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)
    return out


def _scan(database, task_mods, task_of: dict, target_key: str):
    """Sort the database's records: this model's kernels on this target (counted per task, with
    the best latency), other kernels, and this model's kernels tuned for another target."""
    import tvm_ffi

    existing, best = [0] * len(task_mods), [None] * len(task_mods)
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
        if _target_key(rec.target) != target_key:
            mismatched += 1
            continue
        existing[i] += 1
        matched.append(rec)
        m = _run_ms(rec.run_secs)
        if m is not None and (best[i] is None or m < best[i]):
            best[i] = m
    return existing, best, matched, foreign, mismatched


def _first_line(s: str) -> str:
    lines = [l.strip() for l in s.strip().splitlines() if l.strip()]
    # TVM errors end with the cause; the first lines are a traceback header.
    for l in reversed(lines):
        if "Error" in l or "error" in l:
            return l[:300]
    return (lines[-1] if lines else "unknown error")[:300]


def _preload_tensor_intrin() -> None:
    """Import tvm.s_tir.tensor_intrin (TuneContext does) without the minutes it takes beside torch.

    Its TVMScript parsing calls inspect.stack() for every intrinsic; for frames whose file is no
    module's (importlib's frozen frames) inspect.getmodule scans all of sys.modules each time, and
    torch brings thousands. Remembering those misses for the duration of the import fixes it.
    """
    import inspect
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    orig = inspect.getmodule
    misses: set = set()

    def getmodule(obj, _filename=None):
        if _filename is not None and _filename in misses:
            return None
        mod = orig(obj, _filename)
        if mod is None and _filename is not None:
            misses.add(_filename)
        return mod

    inspect.getmodule = getmodule
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401
    finally:
        inspect.getmodule = orig


def _reset_ms_logging() -> None:
    """MetaSchedule's logger setup lists the handlers already on its logger by name, and fails on
    the second tune in a process when one is unnamed; its own are recreated anyway, so drop them."""
    import logging

    lg = logging.getLogger("tvm.s_tir.meta_schedule")
    for h in list(lg.handlers):
        lg.removeHandler(h)
        try:
            h.close()
        except Exception:
            pass


def _worker_initializer():
    """The same preload for MetaSchedule's builder processes (each imports tensor_intrin before its
    first build, which otherwise eats the build timeout). Made by value so workers need not import
    torchtvm (and torch)."""
    import inspect as _inspect

    src = _inspect.getsource(_preload_tensor_intrin)
    ns: dict = {"__name__": "torchtvm_ms_worker_init"}
    exec(compile(src, "<torchtvm_ms_worker_init>", "exec"), ns)
    return ns["_preload_tensor_intrin"]


# ---- the job ------------------------------------------------------------------------------------

def tune_model(params: dict, ctx: JobContext) -> dict:
    """RPC method "tune": params as for compile, plus trials, trials_per_task, work_dir."""
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    from . import builder
    from .import_cache import ImportCache
    from .importer import import_torchscript
    from .loader import load_model
    from .pipeline import compile_model, set_threads
    from .specs import parse_specs

    path = params.get("model")
    trials = int(params.get("trials") or 0)
    if trials < 1:
        raise EngineError("bad_trials", "Tuning needs a trial budget of at least 1 (--trials N).")
    per_task = params.get("trials_per_task")
    per_task = int(per_task) if per_task else None
    work_dir = os.path.abspath(params.get("work_dir") or os.path.join(os.path.dirname(os.path.abspath(path or ".")), "tuning"))
    exported_file = str(path or "").endswith(".pt2")
    specs = parse_specs(params.get("inputs")) if params.get("inputs") or not exported_file else None
    threads = set_threads(params.get("threads"))
    t_start = time.perf_counter()

    ctx.progress("load", f"loading {path}")
    module = load_model(path)
    if specs is None:  # a .pt2's own dims and ranges
        from .importer import program_specs

        specs = program_specs(module)
        params = {**params, "inputs": [s.to_json() for s in specs]}
    ctx.check_cancelled()
    # MetaSchedule tunes kernels of static shape only (a symbolic one fails "Cannot convert ...
    # Array[ir.Var] to Array<IntImm>"): tune at the sample sizes (or the sizes given in
    # tune_sizes), then build the symbolic module, verified at the ends of every range.
    tune_specs, tuned_at = static_tuning_specs(specs, params.get("tune_sizes"))
    if tuned_at:
        ctx.log("Tuning at " + ", ".join(f"{k}={v}" for k, v in tuned_at.items()) + "; the built module serves the whole range (kernels whose shapes follow a symbol keep the default schedule).")
    info = builder.resolve_target(params.get("target") or "llvm", threads)
    from .cpu_features import why_not_runnable

    why = why_not_runnable(info.target, info.features) if info.kind == "llvm" else None
    if why:
        # Every trial runs on this machine: code for a CPU it is not would die with SIGILL.
        raise EngineError("target_not_runnable", f"{why} Tuning measures every candidate here: tune on a machine with that CPU, or compile without --trials.")
    try:
        os.makedirs(work_dir, exist_ok=True)
    except OSError as e:
        raise EngineError("bad_work_dir", f"Cannot create the tuning work dir {work_dir}: {e.strerror}.") from e

    # The work dir keeps the imported model and its tasks (import_cache): a resume with the same
    # model file and input specs starts tuning at once instead of importing again.
    t_import = time.perf_counter()
    cache = ImportCache(work_dir, path, tune_specs)
    imported = cache.load_imported()
    reused = imported is not None
    if reused:
        ctx.progress("import", "reusing the imported model kept in the work dir")
    else:
        ctx.progress("import", "importing TorchScript into TVM Relax")
        imported = import_torchscript(module, tune_specs, progress=lambda m: ctx.progress("import", m))
        ctx.check_cancelled()
        cache.save_imported(imported, ctx.log)
    ctx.check_cancelled()
    target_key = _target_key(info.target)
    extracted = cache.load_tasks(target_key)
    tasks_reused = extracted is not None
    if extracted is None:
        ctx.progress("tune", f"extracting tuning tasks for {info.kind}")
        # The kernels exactly as `build` hands them to the database: in the layout every placement
        # builds from (builder.prepare), legalized, before any default schedule.
        legalized = builder.legalize(builder.prepare(imported.mod, info), info)
        extracted = list(ms.relax_integration.extract_tasks(legalized, info.target))
        if extracted:
            cache.save_tasks(target_key, extracted, ctx.log)
    if not extracted:
        raise EngineError("no_tasks", "The model has no kernels MetaSchedule can tune; compile it without --trials.")
    import_s = time.perf_counter() - t_import
    if reused:
        ctx.log(f"Reused the imported model{' and its ' + str(len(extracted)) + ' tuning tasks' if tasks_reused else ''} kept in the work dir "
                f"(the model file and input specs are unchanged): nothing was imported again ({import_s:.1f} s).")

    repair_report = repair(work_dir)
    repaired = repair_report["dropped_lines"]
    if repair_report["message"]:
        ctx.log(repair_report["message"], "warn")
    try:
        database = ms.database.JSONDatabase(work_dir=work_dir, module_equality="structural")
    except Exception as e:
        raise EngineError("bad_database", f"The tuning database in {work_dir} cannot be read: {_first_line(str(e))}. Use another --work-dir or remove the files.", str(e)) from e

    names = [t.task_name for t in extracted]
    weights = [int(t.weight) for t in extracted]
    task_mods = [t.dispatched[0] for t in extracted]
    hashes = [str(tvm_ffi.structural_hash(m)) for m in task_mods]
    task_of = {}
    for i, h in enumerate(hashes):
        task_of.setdefault(h, i)

    # What the database already holds, per task and target.
    existing, best, matched_records, foreign, mismatched = _scan(database, task_mods, task_of, _target_key(info.target))
    resumed = sum(existing)
    notes = []
    if foreign and not resumed:
        notes.append(f"The work dir holds {foreign} record(s) for other kernels (another model?); none match this model, so none are applied.")
    elif foreign:
        notes.append(f"{foreign} record(s) in the work dir are for kernels this model does not have; they are ignored.")
    if mismatched:
        notes.append(f"{mismatched} record(s) were tuned for another target than {info.kind} {info.mcpu or ''}".rstrip() + "; they are not applied.")
    for n in notes:
        ctx.log(n, "warn")
    if resumed:
        ctx.log(f"Resuming from {resumed} record(s) in {work_dir}.")

    workers = max(1, min(threads, os.cpu_count() or 1))
    # Made only when something is measured: starting the builder's worker pool takes seconds, and a
    # resume with nothing left to measure (or a tuned export) needs neither.
    pools: dict = {}

    def local_builder():
        if "builder" not in pools:
            pools["builder"] = ms.builder.LocalBuilder(max_workers=workers, timeout_sec=60.0, initializer=_worker_initializer())
        return pools["builder"]

    def runner():
        if "runner" not in pools:
            pools["runner"] = ms.runner.LocalRunner(timeout_sec=30.0, evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False))
        return pools["runner"]

    # The baseline each record must beat: the kernel under the default CPU schedule (a few random
    # MetaSchedule samples are often slower). Measured once per work dir and target, kept in the sidecar.
    state = _State(ctx, names, weights, existing, best, trials, per_task)
    if info.kind == "llvm":
        target_key = _target_key(info.target)
        cached = _read_sidecar(work_dir).get("workloads") or {}
        defaults = [(cached.get(h) or {}).get("default_ms") if (cached.get(h) or {}).get("default_target") == target_key else None for h in hashes]
        if any(d is None for d in defaults):
            ctx.progress("tune", f"timing the default schedule of {len(names)} kernel(s) (the baseline records must beat)")
            measured = _measure_defaults(task_mods, info, local_builder(), runner())
            defaults = [d if d is not None else m for d, m in zip(defaults, measured)]
            missing = [n for n, d in zip(names, defaults) if d is None]
            if missing:
                ctx.log(f"Could not time the default schedule of {len(missing)} kernel(s) ({', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}); "
                        "their best records are applied without that comparison.", "warn")
        state.defaults = defaults
    if builder.uses_library(info):
        from .backend import library as _library, measure as _measure

        ctx.progress("tune", "timing the library kernel of each op (tuning goes first to the kernels TVM keeps)")
        for i, ms_ in _measure.task_library_ms(builder.prepare(imported.mod, info), info, _library.library_dtypes(info.features), hashes).items():
            state.library[i] = ms_
    sidecar = {h: {"name": n, "weight": w} for h, n, w in zip(hashes, names, weights)}
    for h, d in zip(hashes, state.defaults):
        if d is not None:
            sidecar[h].update({"default_ms": d, "default_target": _target_key(info.target)})
    _write_sidecar(work_dir, sidecar, path, info.to_json())
    ctx.emit("tune.tasks", {"tasks": [{"id": i, "name": n, "weight": w, "default_ms": d, "library_ms": state.library[i]} for i, (n, w, d) in enumerate(zip(names, weights, state.defaults))]})
    ctx.check_cancelled()
    # Small batches: events flow, a cancel is seen between batches, and every task gets a share.
    remaining = trials - resumed
    if per_task is not None:
        remaining = min(remaining, sum(max(0, per_task - e) for e in existing))
    tune_s = 0.0
    if remaining > 0:
        ctx.progress("tune", f"tuning {len(names)} task(s): {remaining} trial(s) to go" + (f" after {resumed} from the database" if resumed else ""), 0.0)
        t0 = time.perf_counter()
        _preload_tensor_intrin()
        per_iter = int(params.get("trials_per_iter") or max(1, min(16, remaining // len(names))))
        _reset_ms_logging()
        contexts, task_weights = ms.relax_integration.extracted_tasks_to_tune_contexts(extracted, work_dir, num_threads=workers, seed=params.get("seed"))
        the_builder, scheduler, callback = _make_hooks(state, local_builder(), workers)
        try:
            ms.tune.tune_tasks(
                tasks=contexts,
                task_weights=task_weights,
                work_dir=work_dir,
                max_trials_global=remaining,
                max_trials_per_task=per_task or remaining,
                num_trials_per_iter=per_iter,
                builder=the_builder,
                runner=runner(),
                database=database,
                cost_model=ms.cost_model.XGBModel(num_tuning_cores=workers, tree_method="auto"),
                measure_callbacks=[callback],
                task_scheduler=scheduler,
            )
        except Exception as e:
            if ctx.cancelled:
                raise Cancelled(f"Tuning was cancelled; {state.total} trial(s) are kept in {work_dir}.") from e
            raise EngineError("tune_failed", f"MetaSchedule failed: {_first_line(str(e))}. The {state.total} trial(s) so far are kept in {work_dir}.", str(e)) from e
        tune_s = time.perf_counter() - t0
    if ctx.cancelled:
        raise Cancelled(f"Tuning was cancelled; {state.total} trial(s) are kept in {work_dir}; run again with the same work dir to resume.")

    # Rebuild with the records for this target only, and only those faster than the default schedule.
    apply_db = ms.database.MemoryDatabase(module_equality="structural")
    for rec in _scan(database, task_mods, task_of, _target_key(info.target))[2]:
        task = task_of.get(str(tvm_ffi.structural_hash(rec.workload.mod)))
        if task is None or not state.beats_default(task, _run_ms(rec.run_secs)):
            continue
        wl = apply_db.commit_workload(rec.workload.mod)
        apply_db.commit_tuning_record(ms.database.TuningRecord(rec.trace, wl, rec.run_secs, rec.target, rec.args_info))
    # The build imports nothing again when it can use the module tuned (the same specs); with
    # symbolic dims it builds the symbolic module, kept in the work dir the same way.
    build_params = {**params, "_database": apply_db}
    if not tuned_at:
        build_params["_imported"] = imported
    else:
        build_params["_import_cache"] = work_dir
    result = compile_model(build_params, ctx)

    est = state.estimate()
    result["tuning"] = {
        "trials": state.total,
        "new_trials": state.new_trials,
        "budget": trials,
        "trials_per_task": per_task,
        "tasks": [
            {"id": i, "name": n, "weight": w, "trials": state.trials[i], "errors": state.errors[i], "best_ms": state.best[i],
             "default_ms": state.defaults[i], "library_ms": state.library[i], "applied": "record" if state.beats_default(i, state.best[i]) else "default"}
            for i, (n, w) in enumerate(zip(names, weights))
        ],
        "estimated_ms": est,
        "measured_ms": (result.get("latency_ms") or {}).get("tvm", {}).get("p50"),
        "work_dir": work_dir,
        "resumed_records": resumed,
        # Whether the imported model and its tasks came from the work dir (a resume), and how long
        # getting them took.
        "import": {"reused": reused, "tasks_reused": tasks_reused, "seconds": round(import_s, 3), "cache": cache.dir},
        "repaired_lines": repaired,
        "repair": {k: v for k, v in repair_report.items() if v},
        "ignored_records": {"other_kernels": foreign, "other_target": mismatched},
        "notes": notes,
        "tune_s": round(tune_s, 3),
        "wall_s": round(time.perf_counter() - t_start, 3),
        "curve": state.curve,
        "tuned_at": tuned_at or None,
        # MetaSchedule records are per static shape: in a module with symbolic dims they apply to the
        # kernels whose shapes do not follow a symbol; the others keep the default schedule.
        "tuned_at_note": ("Tuned at " + ", ".join(f"{k}={v}" for k, v in tuned_at.items()) + ": the records apply to kernels whose shapes do not follow a symbol; "
                          "kernels that do keep the default schedule over the whole range.") if tuned_at else None,
    }
    return result


def static_tuning_specs(specs, sizes=None):
    """Specs with every symbolic dim fixed at the size to tune for: `sizes[name]` when given (it
    must lie in the symbol's range), else the symbol's sample size. Returns (specs, {name: size})."""
    from dataclasses import replace

    from .specs import SymDim

    sizes = dict(sizes or {})
    chosen: dict[str, int] = {}
    out = []
    for s in specs:
        dims = []
        for d in s.dims:
            if isinstance(d, SymDim):
                v = int(sizes.get(d.name, d.sample()))
                if not d.min <= v <= d.max:
                    raise EngineError("bad_tune_sizes", f"Cannot tune at {d.name}={v}: the symbol's range is {d.min}..{d.max}.")
                chosen[d.name] = v
                dims.append(v)
            else:
                dims.append(d)
        out.append(replace(s, dims=tuple(dims)))
    return out, chosen


def tune_and_build(model, inputs, trials: int, trials_per_task: int | None = None, work_dir: str | None = None, target: str = "llvm", threads: int | None = None, on_event=None, **extra) -> dict:
    """Python entry: tune `model` (a path or a torch.jit.ScriptModule) and build it with the records.

    `inputs` are input specs (dicts or "x:1,3,224,224:float32"-style strings as the engine takes
    them); `on_event(event, data)` receives progress and `tune.trial` events. Returns the tune
    job's result, with the compiled executable under "_executable".
    """
    import tempfile

    import torch

    tmp = None
    if not isinstance(model, (str, os.PathLike)):
        tmp = tempfile.NamedTemporaryFile(suffix=".pt", delete=False)
        tmp.close()
        torch.jit.save(model, tmp.name)
        model = tmp.name
        if work_dir is None:
            raise EngineError("bad_work_dir", "Give a work_dir when tuning an in-memory module.")
    try:
        params = {"model": str(model), "inputs": inputs, "trials": trials, "trials_per_task": trials_per_task, "work_dir": work_dir, "target": target, "threads": threads, **extra}
        return tune_model(params, JobContext("local", on_event))
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
