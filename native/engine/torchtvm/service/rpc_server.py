"""JSON-lines RPC server on stdio: `python -m torchtvm.service`.

Requests  {"id", "method", "params"}     -> replies {"id", "result"} | {"id", "error": {code, message, detail}}
Events    {"event", "job", "data"}       (job = the id of the request that runs)
Special   {"id", "method": "cancel", "params": {"job": ID}} and {"method": "shutdown"}.

One job runs at a time (TVM's compiler and MetaSchedule are not meant to share a process between
jobs); others queue. Quick methods (methods.QUICK_METHODS: `versions`, `tuning_log`, `export_build`), which touch no
compiler state, each run on a short-lived thread of their own instead, so reading a tuning log never
waits behind a tune. Cancel is cooperative; the client kills the process if a job does not stop.
Shutdown cancels what is queued or running and waits (10 s at most) for the running job and the
quick methods to reply.
"""

from __future__ import annotations

import io
import json
import os
import queue
import sys
import threading
import time
import traceback

from torchtvm.common.errors import Cancelled, EngineError
from torchtvm.common.progress import JobContext
from torchtvm.service.methods import METHODS, QUICK_METHODS
from torchtvm.service.params import check_params


class Server:
    def __init__(self, out) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._jobs: dict[str, JobContext] = {}
        self._quick: set[threading.Thread] = set()
        self._quick_lock = threading.Lock()

    def send(self, obj: dict) -> None:
        try:
            line = json.dumps(obj, default=_json_default, allow_nan=False)
        except (ValueError, TypeError, RecursionError) as e:
            # A result JSON cannot carry (NaN, a cycle): the caller still gets a reply, as an error.
            line = json.dumps({"id": obj.get("id") if _valid_id(obj.get("id")) else None, "error": {"code": "internal", "message": f"The engine produced a reply JSON cannot carry ({type(e).__name__}: {str(e)[:200]}); please report this.", "detail": repr(obj)[:2000]}})
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def _worker(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(*item)

    def _start_quick(self, req_id, method: str, params: dict) -> None:
        """Runs a quick method on a thread of its own, beside the job queue."""

        def run():
            try:
                self._run(req_id, method, params)
            finally:
                with self._quick_lock:
                    self._quick.discard(threading.current_thread())

        t = threading.Thread(target=run, name=f"torchtvm-{method}", daemon=True)
        with self._quick_lock:
            self._quick.add(t)
        t.start()

    def _run(self, req_id, method: str, params: dict) -> None:
        """Runs one request and sends its reply (a result or an error); the job queue's worker and the
        quick methods' threads both come here."""
        ctx = self._jobs[req_id]
        try:
            if ctx.cancelled:
                raise Cancelled()
            fn = METHODS.get(method)
            if fn is None:
                raise EngineError("unknown_method", f"The engine has no method {method[:80]!r}; use one of {', '.join(sorted(METHODS))}.")
            check_params(method, params)
            result = fn(params, ctx)
            self.send({"id": req_id, "result": _public(result)})
        except EngineError as e:
            self.send({"id": req_id, "error": e.to_json()})
        except Exception as e:  # a bug or an unexpected library error: keep the trace as detail
            self.send({"id": req_id, "error": {"code": "internal", "message": f"The engine failed unexpectedly: {type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}", "detail": traceback.format_exc()}})
        finally:
            self._jobs.pop(req_id, None)

    def serve(self, inp) -> None:
        worker = threading.Thread(target=self._worker, daemon=True)
        worker.start()
        self.send({"event": "engine.ready", "job": None, "data": {"pid": os.getpid()}})
        for line in inp:
            line = line.strip()
            if not line:
                continue
            try:
                req_id, method, params = parse_request(line)
            except EngineError as e:
                # A malformed request gets an error reply (with its id when that much was readable)
                # and the loop goes on: one bad line must not take the engine down.
                self.send({"id": getattr(e, "request_id", None), "error": e.to_json()})
                continue
            if method == "shutdown":
                break
            if method == "cancel":
                job = params.get("job")
                ctx = self._jobs.get(job) if _valid_id(job) else None
                if ctx:
                    ctx.cancel()
                self.send({"id": req_id, "result": {"cancelled": ctx is not None}})
                continue
            if req_id in self._jobs:
                self.send({"id": req_id, "error": {"code": "bad_request", "message": f"A job with id {req_id!r} is already queued or running; give each request its own id."}})
                continue

            def events(ev: str, data: dict, rid=req_id) -> None:  # rid: this request's id, bound now
                self.send({"event": ev, "job": rid, "data": data})

            ctx = JobContext(req_id, events)
            self._jobs[req_id] = ctx
            if method in QUICK_METHODS:
                self._start_quick(req_id, method, params)
            else:
                self._queue.put((req_id, method, params))
        for ctx in list(self._jobs.values()):
            ctx.cancel()
        self._queue.put(None)
        deadline = time.monotonic() + 10
        worker.join(timeout=10)
        with self._quick_lock:
            quick = list(self._quick)
        for t in quick:
            t.join(timeout=max(0.0, deadline - time.monotonic()))


MAX_ID_LENGTH = 200


def _valid_id(v) -> bool:
    return v is None or (isinstance(v, (str, int)) and not isinstance(v, bool) and len(str(v)) <= MAX_ID_LENGTH)


def _bad_request(message: str, req_id=None) -> EngineError:
    e = EngineError("bad_request", message)
    e.request_id = req_id
    return e


def parse_request(line: str):
    """One JSON-lines request -> (id, method, params), or an EngineError with a sentence (and the
    request's id when it had a usable one)."""
    try:
        req = json.loads(line)
    except (ValueError, RecursionError):
        raise _bad_request("The engine got a line that is not JSON; send one JSON object per line: {\"id\", \"method\", \"params\"}.") from None
    if not isinstance(req, dict):
        raise _bad_request(f"The engine got a JSON {type(req).__name__} where a request object was expected: {{\"id\", \"method\", \"params\"}}.")
    req_id = req.get("id")
    if not _valid_id(req_id):
        raise _bad_request(f"The request id must be a string or an integer (at most {MAX_ID_LENGTH} characters), not a {type(req_id).__name__}.")
    method = req.get("method")
    if not isinstance(method, str) or not method:
        raise _bad_request("The request has no method name; give \"method\" as a string.", req_id)
    params = req.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad_request(f"The params of {method[:60]!r} must be a JSON object, not a {type(params).__name__}.", req_id)
    return req_id, method, params


def _public(result):
    if isinstance(result, dict):
        return {k: _public(v) for k, v in result.items() if not k.startswith("_")}
    if isinstance(result, list):
        return [_public(v) for v in result]
    return result


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def main() -> None:
    # The protocol owns the real stdout; anything libraries print goes to stderr instead.
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Bytes that are not UTF-8 become U+FFFD (and then a bad_request reply), never a crash; only
    # "\n" ends a request (a stray "\r" inside a line must not split it into two replies).
    Server(proto).serve(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"))

