"""One way for the engine to write a small file: a temp file beside it, flushed to disk, then
renamed over it, so a reader (or a crash) never sees half of it; a failed write (a full disk, a
folder in the way) raises and leaves no temp file behind. The app's writes do the same
(app/core/atomic-write.ts)."""

from __future__ import annotations

import os


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
