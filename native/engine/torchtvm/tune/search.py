"""The MetaSchedule search as the workbench runs it: a task scheduler that stops between batches when
the job is cancelled, a builder that checks for cancel between small chunks, a measure callback
that turns every measured candidate into a `tune.trial` event (with the task's best-so-far and the
estimated end-to-end latency), and the timing of each kernel's default schedule (the baseline a
record must beat)."""

from __future__ import annotations

import os
import shutil
import time
from typing import Callable

from torchtvm.backend.cpu_schedule import ParallelVectorize
from torchtvm.common import write_roots
from torchtvm.common.errors import EngineError, first_error_line
from torchtvm.common.progress import JobContext
from torchtvm.tune import estimate as _estimate
from torchtvm.tune.database import run_ms

CANCELLED_MSG = "torchtvm: skipped, the job was cancelled"
# A candidate past the budget (the work dir's total, or a task's share) is not built, measured or
# recorded: MetaSchedule proposes a whole batch, and the budget is exact, never exceeded.
OVER_BUDGET_MSG = "torchtvm: skipped, over the trial budget"
SKIPPED = (CANCELLED_MSG, OVER_BUDGET_MSG)


class SearchState:
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
        # Set when a batch's records did not reach the database file (a full disk): tuning stops.
        self.write_error: str | None = None
        self.lost = 0  # trials measured but not recorded
        # Set when the work dir now resolves outside the folders the job may write in (a folder
        # swapped for a symlink mid-tune): tuning stops before writing there, and this is raised.
        self.refusal: EngineError | None = None
        # The task whose batch is being built (the scheduler's latest pick), for the budget check.
        self.current: int | None = None
        # Called after every measured batch (the run's record in the work dir is rewritten).
        self.on_batch: Callable[[], None] | None = None
        # Trials per measuring server, for a tune over an RPC tracker.
        self.by_server: dict[str, int] = {}

    def room(self, task: int | None) -> int | None:
        """How many more trials the budget allows (the work dir's total, and `task`'s share when
        trials_per_task is set); None when unbounded."""
        left = None if self.budget is None else self.budget - self.total
        if self.per_task is not None and task is not None:
            share = self.per_task - self.trials[task]
            left = share if left is None else min(left, share)
        return None if left is None else max(0, left)

    def beats_default(self, i: int, ms: float | None) -> bool:
        """Whether a record timed `ms` is applied to task i: only when it beats the default schedule."""
        return _estimate.beats_default(ms, self.defaults[i])

    def applied(self, i: int) -> float | None:
        """What the build will run for task i: its best record if that beats the default schedule."""
        return _estimate.applied(self.best[i], self.defaults[i])

    def placed(self, i: int) -> float | None:
        """What the build is expected to run for task i (tune/estimate.py)."""
        return _estimate.placed(self.best[i], self.defaults[i], self.library[i])

    def estimate(self) -> float | None:
        """Σ weight x placed time (tune/estimate.py: the log reader's definition too)."""
        return _estimate.estimate(self.weights, self.best, self.defaults, self.library)


def _appended(path: str, since: int) -> tuple[int, bool]:
    """The lines appended to `path` past byte `since`, and whether the file ends a line."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            tail = f.read()
    except OSError:
        return 0, False
    return tail.count(b"\n"), tail.endswith(b"\n") or not tail


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _appended_lines(path: str, since: int) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            f.seek(since)
            return [l for l in f.read().split(b"\n") if l.strip()]
    except OSError:
        return []


def make_hooks(state: SearchState, builder_impl, workers: int, records_path: str, remote: bool = False):
    """MetaSchedule's builder, task scheduler and measure callback for `state`; `records_path` is
    the JSON database's tuning-record file, which the callback checks after every batch: TVM
    appends to it through an ofstream whose failures (ENOSPC) it never checks. `remote`: measured
    on an RPC tracker's servers (remote/runner.py): each trial says which server measured it, and
    the database's side file (database.MEASURED_ON_FILE) keeps it per record."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.measure_callback import (
        AddToDatabase,
        PyMeasureCallback,
        RemoveBuildArtifact,
        UpdateCostModel,
    )
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

    from torchtvm.remote.runner import measured_on
    from torchtvm.tune.database import append_measured_on, record_key

    @derived_object
    class CancellableBuilder(PyBuilder):
        """Builds in small chunks; once cancelled, the rest come back as (unrecorded) errors."""

        def __init__(self, inner, chunk):
            super().__init__()
            self.inner = inner
            self.chunk = chunk

        def build(self, build_inputs):
            # The scheduler joins every batch before it picks the next, so one batch is in flight:
            # what the budget still allows is known here, and the rest of the batch is skipped.
            room = state.room(state.current)
            n = len(build_inputs) if room is None else min(room, len(build_inputs))
            out = []
            for i in range(0, n, self.chunk):
                part = build_inputs[i:min(n, i + self.chunk)]
                if state.ctx.cancelled:
                    out.extend(BuilderResult(None, CANCELLED_MSG) for _ in part)
                else:
                    out.extend(self.inner.build(part))
            out.extend(BuilderResult(None, OVER_BUDGET_MSG) for _ in build_inputs[n:])
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
            stop = state.ctx.cancelled or state.write_error is not None or state.refusal is not None or (state.budget is not None and state.total >= state.budget)
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
            state.current = self.pick(alive)
            return state.current

        def pick(self, alive: list[int]) -> int:
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
            keep = [i for i, b in enumerate(builder_results) if not (b.error_msg and str(b.error_msg) in SKIPPED)]
            # Read before RemoveBuildArtifact deletes the folder the runner noted it in.
            servers = {i: measured_on(builder_results[i].artifact_path) for i in keep} if remote else {}
            if keep:
                c = [measure_candidates[i] for i in keep]
                b = [builder_results[i] for i in keep]
                r = [runner_results[i] for i in keep]
                try:
                    write_roots.check(records_path, "tuning work dir")
                except EngineError as e:
                    state.refusal = e
                    self.remove.apply(task_scheduler, task_id, measure_candidates, builder_results, runner_results)
                    return
                before = _size(records_path)
                self.add.apply(task_scheduler, task_id, c, b, r)
                lines, whole = _appended(records_path, before)
                if lines < len(keep) or not whole:
                    free = shutil.disk_usage(os.path.dirname(records_path) or ".").free
                    why = "the disk is full" if free < (1 << 20) else f"only {lines} of {len(keep)} records reached the file"
                    state.write_error = f"{why} ({free // 1024} KiB free)"
                    state.lost += len(keep)
                    try:
                        os.truncate(records_path, before)  # no torn line left for the next run
                    except OSError:
                        pass  # the repair on the next open skips it
                    self.remove.apply(task_scheduler, task_id, measure_candidates, builder_results, runner_results)
                    return  # not counted as trials: they are not in the database
                if remote:
                    added = _appended_lines(records_path, before)
                    try:
                        append_measured_on(os.path.dirname(records_path), [(record_key(l), servers.get(i)) for l, i in zip(added, keep)])
                    except OSError:
                        pass  # the record is kept; only where it was measured is lost
                for cb in (self.update, self.remove):
                    cb.apply(task_scheduler, task_id, c, b, r)
            else:
                self.remove.apply(task_scheduler, task_id, measure_candidates, builder_results, runner_results)
            for i in keep:
                b, r = builder_results[i], runner_results[i]
                err = None
                if b.error_msg:
                    err = "build: " + first_error_line(str(b.error_msg))
                elif r.error_msg:
                    err = "run: " + first_error_line(str(r.error_msg))
                ms_ = None if err else run_ms(r.run_secs)
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
                    "time_s": time.time(),
                }
                if remote:
                    data["server"] = servers.get(i)
                    if servers.get(i):
                        state.by_server[servers[i]] = state.by_server.get(servers[i], 0) + 1
                state.curve.append({"total_trials": state.total, "estimated_ms": est})
                state.ctx.emit("tune.trial", data)
            if keep and state.on_batch is not None:
                state.on_batch()

    del ms
    return CancellableBuilder(builder_impl, workers), WorkbenchScheduler(), TrialEvents()


def measure_defaults(task_mods, info, local_builder, runner) -> list[float | None]:
    """Time each kernel under the default CPU schedule (cpu_schedule), with MetaSchedule's own
    builder and runner, so that records are compared with what an untuned build runs."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.runner import RunnerInput

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
        out[i] = None if r.error_msg else run_ms(r.run_secs)
        shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)
    return out


def preload_tensor_intrin() -> None:
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


def reset_ms_logging() -> None:
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


def worker_initializer():
    """The same preload for MetaSchedule's builder processes (each imports tensor_intrin before its
    first build, which otherwise eats the build timeout). Made by value so workers need not import
    torchtvm (and torch)."""
    import inspect as _inspect

    src = _inspect.getsource(preload_tensor_intrin)
    ns: dict = {"__name__": "torchtvm_ms_worker_init"}
    exec(compile(src, "<torchtvm_ms_worker_init>", "exec"), ns)
    return ns["preload_tensor_intrin"]
