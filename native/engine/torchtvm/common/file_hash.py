"""The SHA-256 of a file, read in chunks (a model or a build package can be large)."""

from __future__ import annotations

import hashlib


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
