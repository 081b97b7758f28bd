"""Loading a model file (TorchScript `.pt` or torch.export `.pt2`) with errors that say what is
wrong with it.

Loading a .pt runs code from the file (TorchScript and pickled objects): only load files you trust.
A `.pt2` from `torch.export.save` holds a graph (models/*.json) and weights; an AOTInductor package
(`aoti_compile_and_package`) holds compiled code (data/aotinductor/) and no graph to compile.
"""

from __future__ import annotations

import os
import stat
import warnings
import zipfile

import torch

from torchtvm.common import runtime_library as runtime
from torchtvm.common.errors import EngineError


def pt2_kind(path: str) -> str | None:
    """"exported" for a torch.export.save archive, "aoti" for an AOTInductor package, else None
    (a regular file only: see _check_file)."""
    if not path or not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if any("/data/aotinductor/" in n or n.startswith("data/aotinductor/") for n in names):
        return "aoti"
    if any(n.endswith("archive_format") for n in names) and any("/models/" in n and n.endswith(".json") for n in names):
        return "exported"
    return None


def load_exported(path: str) -> torch.export.ExportedProgram:
    _check_file(path)
    kind = pt2_kind(path)
    if kind is None and _cut_short(path):
        raise _damaged(path)
    if kind == "aoti":
        raise EngineError(
            "aoti_package",
            f"{path} is an AOTInductor package: it holds code torch already compiled and no graph TVM could compile. "
            "Save the program itself with torch.export.save(torch.export.export(model, args), path) and open that file.",
        )
    if kind != "exported":
        raise EngineError("not_pt2", f"{path} is not a torch.export archive; save the program with torch.export.save.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(path)
    except Exception as e:
        raise EngineError("not_pt2", f"{path} could not be loaded as a torch.export program: {_first_line(e)}", str(e)) from e


def load_model(path: str):
    """A TorchScript module or an ExportedProgram, whichever the file holds."""
    if pt2_kind(path) is not None:
        return load_exported(path)
    return load_torchscript(path)


def is_exported(model) -> bool:
    return isinstance(model, torch.export.ExportedProgram)


def runnable(model):
    """Something to call with the inputs: the module itself, or an ExportedProgram's module."""
    return model.module() if is_exported(model) else model


def _check_file(path: str) -> None:
    """A model path must name a regular file: reading a device (/dev/zero) never ends, and opening
    a FIFO waits for a writer forever."""
    if not path:
        raise EngineError("file_not_found", "No model file was given; pass the path of a TorchScript .pt or a torch.export .pt2 file.")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise EngineError("file_not_found", f"{path} does not exist; check the path.") from None
    except OSError as e:
        raise EngineError("not_readable", f"{path} cannot be read ({e.strerror}); check the path and its permissions.") from None
    if stat.S_ISDIR(st.st_mode):
        raise EngineError("not_a_file", f"{path} is a folder; give the path of a TorchScript .pt or a torch.export .pt2 file.")
    if not stat.S_ISREG(st.st_mode):
        raise EngineError(
            "not_a_file",
            f"{path} is not a regular file (a device, FIFO or socket); give the path of a model saved with torch.jit.save or torch.export.save.",
        )
    if st.st_size == 0:
        raise EngineError("empty_file", f"{path} is empty (0 bytes); save the model again with torch.jit.save or torch.export.save.")


_ZIP_MAGIC = b"PK\x03\x04"


def _cut_short(path: str) -> bool:
    """A file that starts as a zip archive but has no readable directory: truncated or damaged."""
    with open(path, "rb") as f:
        return f.read(4) == _ZIP_MAGIC and not zipfile.is_zipfile(path)


def _damaged(path: str) -> EngineError:
    return EngineError(
        "damaged_archive",
        f"{path} starts as a model archive (zip) but its end is missing or damaged: the file was probably cut short while "
        "being copied or saved. Copy or save it again (torch.jit.save for a .pt, torch.export.save for a .pt2).",
    )


def load_torchscript(path: str) -> torch.jit.ScriptModule:
    _check_file(path)
    if _cut_short(path):
        raise _damaged(path)
    if not zipfile.is_zipfile(path):
        raise EngineError(
            "not_a_zip",
            f"{path} is not a TorchScript file (it is not a zip archive); save the model with torch.jit.save.",
        )
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if pt2_kind(path) == "aoti":
        load_exported(path)  # raises its sentence
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
        runtime.load_library()
    except Exception:
        pass


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
