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
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", _LIB_NAME)  # torchtvm/lib


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


def _compiled_parts(module) -> dict[str, dict]:
    """Metadata of every torch.classes.torchtvm.Module held by the module or its submodules,
    keyed by dotted attribute path (`torchtvm_module` for a whole-model export,
    `torchtvm_<child>` for the children a module-level fallback compiled)."""
    import json

    c = getattr(module, "_c", None)
    if c is None:  # a Python nn.Module (the seed API's wrapper): look at its attributes
        obj = getattr(module, "torchtvm_module", None)
        return {"torchtvm_module": json.loads(obj.metadata())} if obj is not None and hasattr(obj, "metadata") else {}
    parts = {}
    for name, obj in torch._C._jit_debug_module_iterators(c)["named_attributes_r"]:  # type: ignore[attr-defined]  # private torch._C binding, not in the stubs
        if name.rsplit(".", 1)[-1].startswith("torchtvm_") and hasattr(obj, "metadata"):
            try:
                parts[name] = json.loads(obj.metadata())
            except Exception:
                continue
    return parts


def exported_metadata(module) -> dict | None:
    """The metadata embedded in a .pt exported by torchtvm, or None for any other model.

    A whole-model export gives its module's metadata. A partly compiled export (module-level
    fallback) gives a summary, `"compiled": "partial"`, with each compiled child's metadata under
    `parts`."""
    parts = _compiled_parts(module)
    if not parts:
        return None
    if list(parts) == ["torchtvm_module"]:
        return parts["torchtvm_module"]
    first = next(iter(parts.values()))
    return {
        "compiled": "partial",
        "format_version": first.get("format_version"),
        "versions": first.get("versions"),
        "target": first.get("target"),
        "cpu_features": sorted({f for m in parts.values() for f in m.get("cpu_features", [])}),
        "library_bytes": sum(int(m.get("library_bytes", 0)) for m in parts.values()),
        "parts": {name: {k: m.get(k) for k in ("inputs", "num_outputs", "library_sha256", "library_bytes")} for name, m in parts.items()},
    }
