"""The folders a job may write in, checked again at the moment of each write.

`torchtvm serve` refuses a job whose paths lie outside its allowed folders before it starts, but the
engine writes by name later (the export, the library in the build folder): a folder swapped for a
symlink to somewhere else meanwhile would take the write outside. The server passes its folders
with the job (`write_roots`); each write resolves its folder again, just before the file is put in
place, and refuses when it is no longer inside one. Without `write_roots` (the desktop app, the
CLI, the Python API) nothing is restricted.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

from torchtvm.common.errors import EngineError

_roots: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("torchtvm_write_roots", default=None)


@contextlib.contextmanager
def allowed(roots: list[str] | None):
    """Writes in this context (a job) are checked against `roots` (None: not restricted)."""
    token = _roots.set(tuple(os.path.realpath(r) for r in roots) if roots else None)
    try:
        yield
    finally:
        _roots.reset(token)


def check(path: str, what: str) -> None:
    """Refuses (EngineError path_not_allowed) a write of `path` whose folder, resolved now, is outside
    the job's roots."""
    roots = _roots.get()
    if roots is None:
        return
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    if not any(folder == r or folder.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise EngineError(
            "path_not_allowed",
            f"The {what} {path} now resolves to {folder}, outside the folders this server may write to ({', '.join(roots)}): "
            "a folder on its way was replaced (a symbolic link?) after the job started. Nothing was written; "
            "choose a path inside one of them (`torchtvm serve --allow-root DIR` allows more).",
        )
