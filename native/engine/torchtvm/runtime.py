"""Locating and loading libtorchtvm_runtime.so, the torch custom class that runs exported models."""

from __future__ import annotations

import os

import torch

_LIB_NAME = "libtorchtvm_runtime.so"
_loaded = False


def library_path() -> str:
    env = os.environ.get("TORCHTVM_RUNTIME_LIB")
    if env:
        return env
    return os.path.join(os.path.dirname(__file__), "lib", _LIB_NAME)


def load_library() -> bool:
    """Register torch.classes.torchtvm.*; returns False when the library has not been built."""
    global _loaded
    if _loaded:
        return True
    path = library_path()
    if not os.path.exists(path):
        return False
    torch.ops.load_library(path)
    _loaded = True
    return True


def exported_metadata(module) -> dict | None:
    """The metadata embedded in a .pt exported by torchtvm, or None for any other model.

    Looks through the module and its submodules for the attribute holding a
    torch.classes.torchtvm.Module (export.ATTR); the first one found wins."""
    import json

    attr = "torchtvm_module"
    try:
        modules = list(module.modules()) if hasattr(module, "modules") else [module]
    except Exception:
        modules = [module]
    for m in modules:
        c = getattr(m, "_c", None)
        try:
            has = c.hasattr(attr) if c is not None else hasattr(m, attr)
            if not has:
                continue
            obj = c.getattr(attr) if c is not None else getattr(m, attr)
            if hasattr(obj, "metadata"):
                return json.loads(obj.metadata())
        except Exception:
            continue
    return None
