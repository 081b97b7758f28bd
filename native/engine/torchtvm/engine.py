"""JSON-lines RPC server on stdio: `python -m torchtvm.engine`.

Requests  {"id", "method", "params"}     -> replies {"id", "result"} | {"id", "error": {code, message, detail}}
Events    {"event", "job", "data"}       (job = the id of the request that runs)
Special   {"id", "method": "cancel", "params": {"job": ID}} and {"method": "shutdown"}.

One job runs at a time (TVM's compiler and MetaSchedule are not meant to share a process between
jobs); others queue. Cancel is cooperative; the client kills the process if a job does not stop.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback

from .errors import Cancelled, EngineError
from .jobs import JobContext


class Server:
    def __init__(self, out):
        self._out = out
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._jobs: dict[str, JobContext] = {}

    def send(self, obj: dict) -> None:
        line = json.dumps(obj, default=_json_default, allow_nan=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def _worker(self):
        from .methods import METHODS

        while True:
            item = self._queue.get()
            if item is None:
                return
            req_id, method, params = item
            ctx = self._jobs[req_id]
            try:
                if ctx.cancelled:
                    raise Cancelled()
                fn = METHODS.get(method)
                if fn is None:
                    raise EngineError("unknown_method", f"The engine has no method {method!r}.")
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
                req = json.loads(line)
                req_id, method, params = req.get("id"), req.get("method"), req.get("params") or {}
            except (ValueError, AttributeError):
                self.send({"id": None, "error": {"code": "bad_request", "message": "The engine got a line that is not a JSON request."}})
                continue
            if method == "shutdown":
                break
            if method == "cancel":
                ctx = self._jobs.get(params.get("job"))
                if ctx:
                    ctx.cancel()
                self.send({"id": req_id, "result": {"cancelled": ctx is not None}})
                continue
            ctx = JobContext(req_id, lambda ev, data, rid=req_id: self.send({"event": ev, "job": rid, "data": data}))
            self._jobs[req_id] = ctx
            self._queue.put((req_id, method, params))
        for ctx in list(self._jobs.values()):
            ctx.cancel()
        self._queue.put(None)
        worker.join(timeout=10)


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
    Server(proto).serve(sys.stdin)


if __name__ == "__main__":
    main()
