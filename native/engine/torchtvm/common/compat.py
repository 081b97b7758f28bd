"""Is this Python fit to run the engine? ("bring your own Python")

The engine may run in a Python the user names (setting `python`, env TORCHTVM_PYTHON) instead of
the bundled .venv. It needs torch and apache-tvm (+ apache-tvm-ffi) of the same minor versions as
the ones pinned in requirements.lock: TVM's torch frontend follows torch's export IR, and the
exported artifact's runtime library is built against these. Versions are read from package
metadata, so the check imports neither torch nor TVM and answers in well under a second.

    python -m torchtvm.compat          # prints {"ok": ..., "versions": {...}, "message": ...}
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

LOCK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "requirements.lock")
# Packages that must match the lock (to the minor version), with what the user should install.
REQUIRED = ("torch", "apache-tvm", "apache-tvm-ffi")


def pinned(lock_path: str = LOCK) -> dict[str, str]:
    out = {}
    try:
        with open(lock_path, encoding="utf-8") as f:
            for line in f:
                name, sep, ver = line.strip().partition("==")
                if sep and name.lower() in REQUIRED:
                    out[name.lower()] = ver
    except OSError:
        pass
    return out


def _minor(v: str) -> tuple[str, ...]:
    return tuple(v.split("+")[0].split(".")[:2])


def check(lock_path: str = LOCK) -> dict:
    want = pinned(lock_path)
    have: dict[str, str | None] = {}
    for name in REQUIRED:
        try:
            have[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            have[name] = None
    problems = []
    for name, ver in want.items():
        got = have.get(name)
        if got is None:
            problems.append(f"{name} is not installed (the engine needs {name}=={ver})")
        elif _minor(got) != _minor(ver):
            problems.append(f"it has {name} {got} but the engine needs {'.'.join(_minor(ver))}.x (pinned {ver})")
    if sys.version_info < (3, 10):
        problems.append(f"it is Python {platform.python_version()}; the engine needs 3.10 or newer")
    message = None
    if problems:
        message = (f"The Python at {sys.executable} cannot run the engine: " + "; ".join(problems) +
                   f". Install them with: {sys.executable} -m pip install " + " ".join(f"{n}=={v}" for n, v in want.items()) +
                   ", or clear the python setting (and TORCHTVM_PYTHON) to use the bundled .venv.")
    return {"ok": not problems, "python": sys.executable, "python_version": platform.python_version(),
            "versions": have, "pinned": want, "message": message}


if __name__ == "__main__":
    print(json.dumps(check()))
