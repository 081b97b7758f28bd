"""Job context handed to every engine method: progress and typed events, logs, cancellation.

The same context serves the RPC server (events become JSON lines) and direct Python calls
(events go to an optional callback), so the Python API and the app share one code path.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from torchtvm.common.errors import Cancelled

EventSink = Callable[[str, dict], None]


class JobContext:
    def __init__(self, job_id: str = "local", sink: EventSink | None = None):
        self.job_id = job_id
        self._sink = sink
        self._cancel = threading.Event()
        self._stage_started: dict[str, float] = {}

    # -- events ---------------------------------------------------------------------------
    def emit(self, event: str, data: dict) -> None:
        if self._sink is not None:
            self._sink(event, data)

    def progress(self, stage: str, message: str, fraction: float | None = None) -> None:
        self._stage_started.setdefault(stage, time.perf_counter())
        data: dict[str, str | float] = {"stage": stage, "message": message}
        if fraction is not None:
            data["fraction"] = max(0.0, min(1.0, float(fraction)))
        self.emit("job.progress", data)

    def log(self, message: str, level: str = "info") -> None:
        # The contract's levels are debug, info, warn, error (app/contract/jobs.ts LogDataSchema).
        level = {"warning": "warn"}.get(level, level)
        self.emit("log", {"level": level if level in ("debug", "info", "warn", "error") else "info", "message": message})

    # -- cancellation ---------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.t0, 3)
