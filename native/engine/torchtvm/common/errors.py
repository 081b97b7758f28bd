"""Errors the engine reports to users: a code, one sentence saying what is wrong and what to do,
and optional detail (a traceback or the underlying message) shown only on demand."""

from __future__ import annotations


class EngineError(Exception):
    """A failure with a user-facing sentence. `code` is stable and machine-readable."""

    def __init__(self, code: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    # Set only on a malformed RPC request whose id was readable (service.rpc_server._bad_request);
    # a declaration for the type checker, so the attribute stays absent (getattr default) elsewhere.
    request_id: str | int | None

    def to_json(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out


class Cancelled(EngineError):
    def __init__(self, message: str = "The job was cancelled."):
        super().__init__("cancelled", message)


def torch_error_summary(e: Exception) -> str:
    """The line of a torch exception that says what went wrong (at most 300 characters)."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    # TorchScript errors put the real cause last, after the interpreter's traceback.
    for l in reversed(lines):
        if "Error" in l or "error" in l or "size" in l or "shape" in l:
            return l[:300]
    return lines[-1][:300] if lines else type(e).__name__


def first_error_line(s: str) -> str:
    """The line of a TVM error message that names the error (TVM puts a traceback header first)."""
    lines = [l.strip() for l in s.strip().splitlines() if l.strip()]
    # TVM errors end with the cause; the first lines are a traceback header.
    for l in reversed(lines):
        if "Error" in l or "error" in l:
            return l[:300]
    return (lines[-1] if lines else "unknown error")[:300]
