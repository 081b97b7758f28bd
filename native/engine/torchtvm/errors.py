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

    def to_json(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out


class Cancelled(EngineError):
    def __init__(self, message: str = "The job was cancelled."):
        super().__init__("cancelled", message)
