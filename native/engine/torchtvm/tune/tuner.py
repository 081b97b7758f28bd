"""The tune stage: MetaSchedule over the imported model, every measured trial streamed as an event;
its product is the database of records to build with (those faster than the default schedule).

Why a custom task scheduler and measure callback instead of `tune_relax` (search.py):
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
  records still seed the search, so tuning continues from where it stopped;
- the budget is exact: MetaSchedule proposes whole batches, and the candidates of a batch past the
  budget are skipped (never built, measured or recorded);
- one record per run (runs.py): budget, the records it started from, its own trials, its first and
  best estimate, kept in the work dir after every batch. The library times and default schedules
  the estimate counts are timed once per work dir and target (sidecar), so a resume's estimate
  starts where the run it resumed ended and moves only with tuned kernels.

The work dir's files and their repair are database.py's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

import tvm_ffi
from tvm.s_tir import meta_schedule as ms

from torchtvm.backend import build as builder
from torchtvm.backend import library as _library
from torchtvm.backend import measure as _measure
from torchtvm.backend.build import TargetInfo
from torchtvm.common import write_roots
from torchtvm.common.errors import Cancelled, EngineError, first_error_line
from torchtvm.common.options import CompileOptions
from torchtvm.common.progress import JobContext
from torchtvm.common.specs import SymDim
from torchtvm.frontend.import_cache import ImportCache
from torchtvm.frontend.importer import Imported
from torchtvm.tune import runs as _runs
from torchtvm.tune.builder_pool import PooledBuilder
from torchtvm.tune.database import (
    RECORD_FILE,
    read_sidecar,
    repair,
    run_ms,
    scan,
    target_key,
    write_sidecar,
)
from torchtvm.tune.search import (
    SearchState,
    make_hooks,
    measure_defaults,
    preload_tensor_intrin,
    reset_ms_logging,
    worker_initializer,
)


@dataclass
class _Tasks:
    """The model's tuning tasks, by index: MetaSchedule's extracted tasks and what is read off them."""

    extracted: list
    names: list[str] = field(init=False)
    weights: list[int] = field(init=False)
    mods: list = field(init=False)
    hashes: list[str] = field(init=False)
    index_of: dict[str, int] = field(init=False)  # workload hash -> first task with it

    def __post_init__(self):
        self.names = [t.task_name for t in self.extracted]
        self.weights = [int(t.weight) for t in self.extracted]
        self.mods = [t.dispatched[0] for t in self.extracted]
        self.hashes = [str(tvm_ffi.structural_hash(m)) for m in self.mods]
        self.index_of = {}
        for i, h in enumerate(self.hashes):
            self.index_of.setdefault(h, i)


class _Pools:
    """MetaSchedule's builder and runner, made only when something is measured: starting the
    builder's worker pool takes seconds, and a resume with nothing left to measure needs neither."""

    def __init__(self, workers: int, fleet=None):
        self.workers = workers
        self.fleet = fleet  # remote.fleet.Fleet: measure on a tracker key's servers
        self._builder = self._runner = None

    def builder(self):
        if self._builder is None:
            self._builder = PooledBuilder(max_workers=self.workers, timeout_sec=60.0, initializer=worker_initializer())
        return self._builder

    def runner(self):
        if self._runner is None:
            config = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)
            if self.fleet is not None:
                # MetaSchedule's RPCRunner: one measurement per server at a time, through the tracker.
                from torchtvm.remote.runner import make_runner

                self._runner = make_runner(self.fleet, config)
            else:
                self._runner = ms.runner.LocalRunner(timeout_sec=30.0, evaluator_config=config)
        return self._runner

    def close(self) -> None:
        """Stop the builder's and the runner's worker processes now (the runner's hold RPC sessions
        to the servers when it measures remotely), not whenever the garbage collector gets to them:
        a cancelled or failed tune leaves no process on either side."""
        if self._builder is not None:
            self._builder.close()
            self._builder = None
        pool = getattr(self._runner, "pool", None)
        if pool is not None:
            try:
                pool.shutdown(wait=False)
            except Exception:
                pass
        self._runner = None


def tune(imported: Imported, cache: ImportCache, reused: bool, t_import: float, info: TargetInfo, options: CompileOptions, threads: int, ctx: JobContext, fleet=None):
    """Tune `imported` (imported at static sizes and kept in `cache`; `reused`: it came from there,
    the import having started at `t_import`) for `info` in `options.work_dir`, with `options.trials`
    as the work dir's total budget. Returns (a database of the records to build with, the report
    that becomes the result's `tuning`). `fleet` (remote.fleet.Fleet): measure on an RPC tracker
    key's servers instead of here; builds stay here."""
    work_dir = options.work_dir
    assert work_dir is not None
    tasks, tasks_reused = _extract_tasks(imported, cache, info, ctx)
    import_s = time.perf_counter() - t_import
    if reused:
        ctx.log(f"Reused the imported model{' and its ' + str(len(tasks.names)) + ' tuning tasks' if tasks_reused else ''} kept in the work dir "
                f"(the model file and input specs are unchanged): nothing was imported again ({import_s:.1f} s).")
    write_roots.check(os.path.join(work_dir, RECORD_FILE), "tuning work dir")
    database, repair_report = _open_database(work_dir, ctx)

    # What the database already holds, per task and target.
    existing, best, _, foreign, mismatched = scan(database, tasks.mods, tasks.index_of, target_key(info.target))
    resumed = sum(existing)
    notes = _resume_notes(foreign, mismatched, resumed, info)
    for n in notes:
        ctx.log(n, "warn")
    if resumed:
        ctx.log(f"Resuming from {resumed} record(s) in {work_dir}.")

    pools = _Pools(max(1, min(threads, os.cpu_count() or 1)), fleet)
    # The runner's worker processes (RPC sessions, when measuring remotely) stop when the tune ends,
    # however it ends (pools.close).
    try:
        state = SearchState(ctx, tasks.names, tasks.weights, existing, best, options.trials, options.trials_per_task)
        _time_baselines(state, tasks, imported, info, pools, options, ctx)
        record = _start_record(state, resumed, options, ctx)
        ctx.emit("tune.tasks", {
            "tasks": [{"id": i, "name": n, "weight": w, "default_ms": d, "library_ms": state.library[i], "records": state.trials[i], "best_ms": state.best[i]}
                      for i, (n, w, d) in enumerate(zip(tasks.names, tasks.weights, state.defaults))],
            "budget": options.trials,
            "resumed_records": resumed,
            "estimated_ms": record["first_estimate_ms"],
        })
        try:
            ctx.check_cancelled()
            tune_s = _search(state, tasks, database, pools, existing, resumed, options, ctx)
            if fleet is not None and state.by_server:
                ctx.log("Measured on " + ", ".join(f"{k}: {v} trial(s)" for k, v in sorted(state.by_server.items())) + ".")
        except BaseException as e:
            _save_record(record, state, work_dir, "cancelled" if isinstance(e, Cancelled) else "failed")
            raise
        _save_record(record, state, work_dir, "tuned")
        short = _ended_early(state, options)
        if short:
            notes.append(short)
            ctx.log(short, "warn")
        report = {
            "trials": state.total,
            "new_trials": state.new_trials,
            "budget": options.trials,
            "trials_per_task": options.trials_per_task,
            "tasks": [
                {"id": i, "name": n, "weight": w, "trials": state.trials[i], "errors": state.errors[i], "best_ms": state.best[i],
                 "default_ms": state.defaults[i], "library_ms": state.library[i], "applied": "record" if state.beats_default(i, state.best[i]) else "default"}
                for i, (n, w) in enumerate(zip(tasks.names, tasks.weights))
            ],
            "estimated_ms": state.estimate(),
            "first_estimate_ms": record["first_estimate_ms"],
            "measured_ms": None,  # the pipeline fills it in after the build is measured
            "work_dir": work_dir,
            "resumed_records": resumed,
            # This run's record in the work dir (runs.py): the figures every view shows.
            "run": dict(record),
            # Whether the imported model and its tasks came from the work dir (a resume), and how long
            # getting them took.
            "import": {"reused": reused, "tasks_reused": tasks_reused, "seconds": round(import_s, 3), "cache": cache.dir},
            "repaired_lines": repair_report["dropped_lines"],
            "repair": {k: v for k, v in repair_report.items() if v},
            "ignored_records": {"other_kernels": foreign, "other_target": mismatched},
            "notes": notes,
            "tune_s": round(tune_s, 3),
            "wall_s": None,  # the whole job, filled in by the pipeline
            "curve": state.curve,
        }
        if fleet is not None:
            # Where the trials were measured: per server, this run's trials (failed ones included).
            report["fleet"] = {**fleet.to_json(), "trials_by_server": dict(state.by_server)}
        return _records_to_apply(database, tasks, state, info), report
    finally:
        pools.close()


def _start_record(state: SearchState, resumed: int, options: CompileOptions, ctx: JobContext) -> dict:
    """This run's record (runs.py), written to the work dir before the first trial and after every
    batch. Its id is the job's (numbered when the same id ran before, as Python API calls do)."""
    work_dir = options.work_dir
    assert work_dir is not None
    taken = {r.get("id") for r in _runs.read_runs(work_dir)}
    run_id, n = ctx.job_id, 1
    while run_id in taken:
        n += 1
        run_id = f"{ctx.job_id}#{n}"
    record = _runs.new_run(run_id, options.trials, options.trials_per_task, resumed, state.estimate())
    state.on_batch = lambda: _save_record(record, state, work_dir, "running")
    _save_record(record, state, work_dir, "running")
    return record


def _save_record(record: dict, state: SearchState, work_dir: str, run_state: str) -> None:
    """Rewrites the run's record; a run with nothing to measure (its budget already met, as a tuned
    export's is) keeps none in the work dir."""
    if record["budget"] is not None and record["budget"] <= record["resumed"]:
        return
    record.update(state=run_state, trials=state.new_trials, total=state.total, errors=sum(state.errors), estimate_ms=state.estimate())
    if run_state != "running":
        record["ended_at"] = time.time()
    try:
        _runs.write_run(work_dir, record)
    except (OSError, EngineError):
        # The record is a report: a full disk, or a work dir swapped for a link outside the job's
        # folders, stops the tune through its records (search.py), never through this.
        pass


def _ended_early(state: SearchState, options: CompileOptions) -> str | None:
    """Why the search stopped before its budget, when it did (not cancelled, no write error): every
    task's candidates ran out. MetaSchedule then simply returns; a tune reported 1 trial of 16 as a
    success without a word."""
    budget = options.trials
    if options.trials_per_task is not None:
        budget = min(budget, options.trials_per_task * len(state.names))
    if state.total >= budget:
        return None
    return (
        f"Tuning ended after {state.total} of {budget} trial(s): MetaSchedule found no new candidate for any task "
        f"({len(state.names)} task(s); small or elementwise kernels have few distinct schedules, and each was measured). "
        "More trials would measure nothing new."
    )


def _extract_tasks(imported: Imported, cache: ImportCache, info: TargetInfo, ctx: JobContext) -> tuple[_Tasks, bool]:
    """The model's tuning tasks, kept in the work dir's import cache. Returns (tasks, reused)."""
    key = target_key(info.target)
    extracted = cache.load_tasks(key)
    reused = extracted is not None
    if extracted is None:
        ctx.progress("tune", f"extracting tuning tasks for {info.kind}")
        # The kernels exactly as `build` hands them to the database: in the layout every placement
        # builds from (builder.prepare), legalized, before any default schedule.
        legalized = builder.legalize(builder.prepare(imported.mod, info), info)
        extracted = list(ms.relax_integration.extract_tasks(legalized, info.target))
        if extracted:
            cache.save_tasks(key, extracted, ctx.log)
    if not extracted:
        raise EngineError("no_tasks", "The model has no kernels MetaSchedule can tune; compile it without --trials.")
    return _Tasks(extracted), reused


def _open_database(work_dir: str, ctx: JobContext):
    """The work dir's database, repaired first (database.repair). Returns (database, repair report)."""
    repair_report = repair(work_dir)
    if repair_report["message"]:
        ctx.log(repair_report["message"], "warn")
    try:
        return ms.database.JSONDatabase(work_dir=work_dir, module_equality="structural"), repair_report
    except Exception as e:
        raise EngineError("bad_database", f"The tuning database in {work_dir} cannot be read: {first_error_line(str(e))}. Use another --work-dir or remove the files.", str(e)) from e


def _resume_notes(foreign: int, mismatched: int, resumed: int, info: TargetInfo) -> list[str]:
    notes = []
    if foreign and not resumed:
        notes.append(f"The work dir holds {foreign} record(s) for other kernels (another model?); none match this model, so none are applied.")
    elif foreign:
        notes.append(f"{foreign} record(s) in the work dir are for kernels this model does not have; they are ignored.")
    if mismatched:
        notes.append(f"{mismatched} record(s) were tuned for another target than {info.kind} {info.mcpu or ''}".rstrip() + "; they are not applied.")
    return notes


def _time_baselines(state: SearchState, tasks: _Tasks, imported: Imported, info: TargetInfo, pools: _Pools, options: CompileOptions, ctx: JobContext) -> None:
    """What each record must beat: the kernel under the default CPU schedule (a few random
    MetaSchedule samples are often slower), and the library call an op would otherwise run; both
    measured once per work dir and target and kept in the sidecar."""
    work_dir = options.work_dir
    assert work_dir is not None
    key = target_key(info.target)
    if info.kind == "llvm":
        cached = read_sidecar(work_dir).get("workloads") or {}
        defaults = [(cached.get(h) or {}).get("default_ms") if (cached.get(h) or {}).get("default_target") == key else None for h in tasks.hashes]
        if any(d is None for d in defaults):
            ctx.progress("tune", f"timing the default schedule of {len(tasks.names)} kernel(s) (the baseline records must beat)")
            measured = measure_defaults(tasks.mods, info, pools.builder(), pools.runner())
            defaults = [d if d is not None else m for d, m in zip(defaults, measured)]
            missing = [n for n, d in zip(tasks.names, defaults) if d is None]
            if missing:
                ctx.log(f"Could not time the default schedule of {len(missing)} kernel(s) ({', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}); "
                        "their best records are applied without that comparison.", "warn")
        state.defaults = defaults
    library_known = builder.uses_library(info)
    if library_known:
        # Timed once per work dir and target, like the default schedules: timing them again on a
        # resume moved the estimate at a trial that had changed nothing.
        cached = read_sidecar(work_dir).get("workloads") or {}
        kept = [(cached.get(h) or {}) for h in tasks.hashes]
        if all(k.get("library_target") == key for k in kept):
            state.library = [k.get("library_ms") if isinstance(k.get("library_ms"), (int, float)) else None for k in kept]
        else:
            ctx.progress("tune", "timing the library kernel of each op (tuning goes first to the kernels TVM keeps)")
            for i, ms_ in _measure.task_library_ms(builder.prepare(imported.mod, info), info, _library.library_dtypes(info.features), tasks.hashes).items():
                state.library[i] = ms_
    sidecar: dict[str, dict] = {h: {"name": n, "weight": w} for h, n, w in zip(tasks.hashes, tasks.names, tasks.weights)}
    for h, d, lib in zip(tasks.hashes, state.defaults, state.library):
        if d is not None:
            sidecar[h].update({"default_ms": d, "default_target": key})
        if library_known:
            sidecar[h].update({"library_ms": lib, "library_target": key})
    write_sidecar(work_dir, sidecar, options.model, info.to_json())


# MetaSchedule's evolutionary search evolves a population of 512 candidates each round, whatever
# the round measures: made for batches of 64, it cost 10-20 s a round on two cores where a tiny
# budget measures 2-4 kernels in a second. The population scales with the batch: at least 32
# candidates searched per one measured, and MetaSchedule's 512 from batches of 16 up.
POPULATION_PER_TRIAL, MIN_POPULATION, MAX_POPULATION = 32, 64, 512


def search_population(per_iter: int) -> int:
    return max(MIN_POPULATION, min(MAX_POPULATION, POPULATION_PER_TRIAL * per_iter))


def _search(state: SearchState, tasks: _Tasks, database, pools: _Pools, existing: list[int], resumed: int, options: CompileOptions, ctx: JobContext) -> float:
    """Measure what is left of the budget in small batches (events flow, a cancel is seen between
    batches, and every task gets a share). Returns the seconds it took."""
    work_dir, per_task = options.work_dir, options.trials_per_task
    remaining = options.trials - resumed
    if per_task is not None:
        remaining = min(remaining, sum(max(0, per_task - e) for e in existing))
    tune_s = 0.0
    if remaining > 0:
        ctx.progress("tune", f"tuning {len(tasks.names)} task(s): {remaining} trial(s) to go" + (f" after {resumed} from the database" if resumed else ""), 0.0)
        t0 = time.perf_counter()
        preload_tensor_intrin()
        per_iter = options.trials_per_iter or max(1, min(16, remaining // len(tasks.names)))
        reset_ms_logging()
        strategy = ms.search_strategy.EvolutionarySearch(population_size=search_population(per_iter))
        contexts, task_weights = ms.relax_integration.extracted_tasks_to_tune_contexts(tasks.extracted, work_dir, strategy=strategy, num_threads=pools.workers, seed=options.seed)
        records_path = os.path.join(str(work_dir), RECORD_FILE)  # where JSONDatabase appends
        the_builder, scheduler, callback = make_hooks(state, pools.builder(), pools.workers, records_path, remote=pools.fleet is not None)
        try:
            ms.tune.tune_tasks(
                tasks=contexts,
                task_weights=task_weights,
                work_dir=work_dir,
                max_trials_global=remaining,
                max_trials_per_task=per_task or remaining,
                num_trials_per_iter=per_iter,
                builder=the_builder,
                runner=pools.runner(),
                database=database,
                cost_model=ms.cost_model.XGBModel(num_tuning_cores=pools.workers, tree_method="auto"),
                measure_callbacks=[callback],
                task_scheduler=scheduler,
            )
        except Exception as e:
            if ctx.cancelled:
                raise Cancelled(f"Tuning was cancelled; {state.total} trial(s) are kept in {work_dir}.") from e
            raise EngineError("tune_failed", f"MetaSchedule failed: {first_error_line(str(e))}. The {state.total} trial(s) so far are kept in {work_dir}.", str(e)) from e
        tune_s = time.perf_counter() - t0
        if state.refusal is not None:
            raise state.refusal
        if state.write_error is not None:
            raise EngineError(
                "database_write_failed",
                f"Tuning stopped: the records of {state.lost} trial(s) could not be written to {records_path}: {state.write_error}. "
                f"The {state.new_trials} trial(s) recorded before are kept in {work_dir}. Free some disk space (or pass another --work-dir) "
                "and run again with the same work dir to resume.",
            )
    if ctx.cancelled:
        raise Cancelled(f"Tuning was cancelled; {state.total} trial(s) are kept in {work_dir}; run again with the same work dir to resume.")
    return tune_s


def _records_to_apply(database, tasks: _Tasks, state: SearchState, info: TargetInfo):
    """The records to build with: for this target only, and only those faster than the default schedule."""
    apply_db = ms.database.MemoryDatabase(module_equality="structural")
    for rec in scan(database, tasks.mods, tasks.index_of, target_key(info.target))[2]:
        task = tasks.index_of.get(str(tvm_ffi.structural_hash(rec.workload.mod)))
        if task is None or not state.beats_default(task, run_ms(rec.run_secs)):
            continue
        wl = apply_db.commit_workload(rec.workload.mod)
        apply_db.commit_tuning_record(ms.database.TuningRecord(rec.trace, wl, rec.run_secs, rec.target, rec.args_info))
    return apply_db


def static_tuning_specs(specs, sizes=None):
    """Specs with every symbolic dim fixed at the size to tune for: `sizes[name]` when given (it
    must lie in the symbol's range), else the symbol's sample size. Returns (specs, {name: size})."""
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
