"""Loading a TorchScript file with errors that say what is wrong with it.

Loading a .pt runs code from the file (TorchScript and pickled objects): only load files you trust.
"""

from __future__ import annotations

import os
import zipfile

import torch

from .errors import EngineError


def load_torchscript(path: str) -> torch.jit.ScriptModule:
    if not path:
        raise EngineError("file_not_found", "No model file was given; pass the path of a TorchScript .pt file.")
    if not os.path.exists(path):
        raise EngineError("file_not_found", f"{path} does not exist; check the path.")
    if os.path.isdir(path):
        raise EngineError("not_a_file", f"{path} is a folder; give the path of a TorchScript .pt file.")
    if not zipfile.is_zipfile(path):
        raise EngineError(
            "not_a_zip",
            f"{path} is not a TorchScript file (it is not a zip archive); save the model with torch.jit.save.",
        )
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if not any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names) or not any(n.endswith("constants.pkl") for n in names):
        hint = " It looks like a torch.save()d state dict or object." if any(n.endswith("data.pkl") for n in names) else ""
        raise EngineError(
            "not_torchscript",
            f"{path} is a zip archive but not a TorchScript module.{hint} "
            "Convert the model with torch.jit.trace or torch.jit.script and save it with torch.jit.save.",
        )
    _ensure_runtime_loaded()
    try:
        m = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # torch raises RuntimeError with long C++ traces
        raise EngineError("not_torchscript", f"{path} could not be loaded as TorchScript: {_first_line(e)}", str(e)) from e
    m.eval()
    return m


def _ensure_runtime_loaded():
    # An exported .pt refers to torch.classes.torchtvm.*; the runtime library must be loaded first.
    try:
        from . import runtime

        runtime.load_library()
    except Exception:
        pass


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
