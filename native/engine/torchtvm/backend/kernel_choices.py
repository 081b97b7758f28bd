"""The timings behind each library call's algorithm, cached across builds and models.

Placement times every library call's algorithms on this machine (measure.time_library_calls).
A rebuild, or another model with a call of the same signature, reads the times instead of timing
again. The key holds everything a time depends on: the call's signature (function, attributes,
shapes and dtypes) and the machine as the kernels see it (CPU model, the ISA caps of the runtime,
oneDNN and ATen, threads, the torch and TVM versions, the runtime library's build). A change of
any of them times again. The file is `kernel-timings.json` in the workbench home
(`TORCHTVM_HOME`, else ~/.torchtvm); `TORCHTVM_KERNEL_CACHE=0` turns the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform

from torchtvm.common.atomic_write import write_text_atomic

# Entries beyond this many are dropped, oldest first: a home that compiles many models stays small.
MAX_ENTRIES = 4000
FILE = "kernel-timings.json"


def home() -> str:
    return os.environ.get("TORCHTVM_HOME") or os.path.join(os.path.expanduser("~"), ".torchtvm")


def enabled() -> bool:
    return os.environ.get("TORCHTVM_KERNEL_CACHE", "1") != "0"


@functools.lru_cache(maxsize=1)
def _runtime_build() -> str:
    from torchtvm.common.runtime_library import library_path

    try:
        with open(library_path(), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return "none"


def machine() -> dict:
    """What a kernel's time depends on besides its own signature."""
    import torch
    import tvm

    from torchtvm.common import cpu_features, isa_cap

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "flags": hashlib.sha256(" ".join(sorted(cpu_features.host_flags())).encode()).hexdigest()[:12],
        "isa": isa_cap.describe(),
        "onednn": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "tvm": tvm.__version__,
        "runtime": _runtime_build(),
    }


def busy() -> bool:
    """Whether something else competes for the CPU now (the load average beyond this process's
    threads): timings taken then measure the load, and are used for this build but not kept."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return load > (os.cpu_count() or 1) + 0.75


def key(signature: dict, machine_info: dict) -> str:
    text = json.dumps({"call": signature, "machine": machine_info}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class TimingCache:
    """{key: {algorithm: ms}} in the home folder; reads once, writes at `save` (atomically)."""

    def __init__(self, path: str | None = None):
        self.path = path or os.path.join(home(), FILE)
        self.entries: dict[str, dict[str, float]] = {}
        self.dirty = False
        self.added: list[str] = []
        if not enabled():
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict):
                self.entries = {k: v for k, v in data.items() if isinstance(v, dict)}
        except (OSError, ValueError):
            pass  # none yet, or unreadable: time again (and rewrite it)

    def get(self, k: str) -> dict[str, float] | None:
        return self.entries.get(k) if enabled() else None

    def put(self, k: str, times: dict[str, float]) -> None:
        if not enabled():
            return
        self.entries.pop(k, None)
        self.entries[k] = times  # newest last
        self.added.append(k)
        self.dirty = True

    def forget_added(self) -> int:
        """Drops what this build timed (taken on a busy machine); returns how many."""
        n = 0
        for k in self.added:
            n += self.entries.pop(k, None) is not None
        self.added = []
        return n

    def save(self, log=None) -> None:
        """Writes the file; a home that cannot be written costs the next build its timing, not
        this build (a warning through `log`)."""
        if not self.dirty:
            return
        items = list(self.entries.items())[-MAX_ENTRIES:]
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_text_atomic(self.path, json.dumps(dict(items)))
            self.dirty = False
        except OSError as e:
            if log is not None:
                log(f"kernel timings not cached ({e.strerror or e}): the next build times its library calls again", "warn")
