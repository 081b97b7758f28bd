"""A tuning work dir's copy of the imported model and its tuning tasks.

Resuming a tune (or a tuned export, which is a tune with nothing left to measure) used to start by
importing the model again: TorchScript -> ExportedProgram -> decompositions -> Relax, then fusing,
legalizing and extracting the tuning tasks. For ResNet-18 that is 15-40 s before the first trial,
for an answer that cannot have changed. The work dir therefore keeps:

- `workbench_import/<key>/relax.json`: the imported Relax module (`tvm.ir.save_json`, weights
  included as base64 constants; ~63 MB for ResNet-18, loaded in about half a second);
- `workbench_import/<key>/tasks-<target>.json`: the extracted tasks for one target;
- `workbench_import/<key>/meta.json`: what the key was made of, and the output count. Written last,
  so an entry without it is incomplete and is ignored.

The key is the SHA-256 of the model file's bytes, the input specs the import used, the torch and
TVM versions and a fingerprint of this engine's own source: a changed model file, changed specs or
an upgraded engine miss the cache and import again. Any damaged or unreadable entry is a miss as
well (and is removed), and failing to write one is only logged: the cache can save time, never
change a result. Only the newest few entries are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

from torchtvm.common.atomic_write import write_text_atomic
from torchtvm.common.file_hash import file_sha256
from torchtvm.frontend.importer import Imported

CACHE_DIR = "workbench_import"
FORMAT = 1
KEEP = 2  # entries per work dir (each can be tens of MB)

_fingerprint: str | None = None


def engine_fingerprint() -> str:
    """SHA-256 over this package's Python source: an engine change must not reuse an old import."""
    global _fingerprint
    if _fingerprint is None:
        h = hashlib.sha256()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the whole torchtvm package
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    p = os.path.join(dirpath, name)
                    h.update(os.path.relpath(p, root).encode())
                    with open(p, "rb") as f:
                        h.update(f.read())
        _fingerprint = h.hexdigest()
    return _fingerprint


class ImportCache:
    """One model file + input specs in one work dir."""

    def __init__(self, work_dir: str, model_path: str, specs):
        import torch
        import tvm

        self.fields = {
            "format": FORMAT,
            "model_sha256": file_sha256(model_path),
            "inputs": [s.to_json() for s in specs],
            "torch": torch.__version__,
            "tvm": tvm.__version__,
            "engine": engine_fingerprint(),
        }
        digest = hashlib.sha256(json.dumps(self.fields, sort_keys=True).encode()).hexdigest()[:24]
        self.root = os.path.join(work_dir, CACHE_DIR)
        self.dir = os.path.join(self.root, digest)
        self.model_path = model_path

    # -- the imported module ----------------------------------------------------------------
    def load_imported(self):
        """The cached import as an `importer.Imported` (no ExportedProgram), or None."""
        import tvm

        meta = self._meta()
        if meta is None:
            return None
        try:
            with open(os.path.join(self.dir, "relax.json"), encoding="utf-8") as f:
                mod = tvm.ir.load_json(f.read())
            if not isinstance(mod, tvm.IRModule):
                raise ValueError("not an IRModule")
        except Exception:
            self.drop()
            return None
        self._touch()
        # sources: which graph node each Relax var came from (provenance.py), for the graph view.
        return Imported(mod=mod, program=None, sample_inputs=[], num_outputs=int(meta["num_outputs"]), sources=dict(meta.get("sources") or {}))

    def save_imported(self, imported, log=None) -> None:
        import tvm

        try:
            os.makedirs(self.dir, exist_ok=True)
            write_text_atomic(os.path.join(self.dir, "relax.json"), tvm.ir.save_json(imported.mod))
            # meta.json last: an entry without it was cut short and is never read.
            write_text_atomic(os.path.join(self.dir, "meta.json"), json.dumps({**self.fields, "model": os.path.abspath(self.model_path), "num_outputs": imported.num_outputs, "sources": getattr(imported, "sources", None) or {}, "saved": time.time()}, indent=1))
            self._prune()
        except Exception as e:  # a full disk must not fail the tune
            if log:
                log(f"Could not keep the imported model in {self.dir} ({e}); the next resume imports it again.", "warn")
            self.drop()

    # -- the tuning tasks, per target -------------------------------------------------------
    def _tasks_path(self, target_key: str) -> str:
        return os.path.join(self.dir, f"tasks-{hashlib.sha256(target_key.encode()).hexdigest()[:16]}.json")

    def load_tasks(self, target_key: str):
        """The extracted tasks (ExtractedTask objects) for this target, or None."""
        import tvm

        if self._meta() is None:
            return None
        path = self._tasks_path(target_key)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                tasks = list(tvm.ir.load_json(f.read()))
            if not tasks or not all(hasattr(t, "dispatched") and hasattr(t, "task_name") for t in tasks):
                raise ValueError("not a task list")
            return tasks
        except Exception:
            try:
                os.unlink(path)
            except OSError:
                pass
            return None

    def save_tasks(self, target_key: str, tasks, log=None) -> None:
        import tvm

        if self._meta() is None:  # only beside a complete import
            return
        try:
            write_text_atomic(self._tasks_path(target_key), tvm.ir.save_json(list(tasks)))
        except Exception as e:
            if log:
                log(f"Could not keep the tuning tasks in {self.dir} ({e}); the next resume extracts them again.", "warn")

    # -- housekeeping -----------------------------------------------------------------------
    def _meta(self) -> dict | None:
        try:
            with open(os.path.join(self.dir, "meta.json"), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in self.fields.items()) or not isinstance(meta.get("num_outputs"), int):
            return None
        return meta

    def _touch(self) -> None:
        try:
            os.utime(os.path.join(self.dir, "meta.json"))
        except OSError:
            pass

    def drop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _prune(self) -> None:
        """Keep the KEEP most recently used entries."""
        entries = []
        for name in os.listdir(self.root):
            p = os.path.join(self.root, name)
            meta = os.path.join(p, "meta.json")
            entries.append((os.path.getmtime(meta) if os.path.exists(meta) else 0.0, p))
        for _, p in sorted(entries, reverse=True)[KEEP:]:
            if p != self.dir:
                shutil.rmtree(p, ignore_errors=True)
