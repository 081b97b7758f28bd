"""The seed project's Python API, kept working on top of the engine:

    option = {"input_infos": [("x", (1, 3, 224, 224))], "default_dtype": "float32",
              "export_dir": "pytorch_compiled", "num_outputs": 1,
              "tuning_n_trials": 0, "tuning_log_file": "tuning.log"}
    m = torchtvm.compile(torch.jit.trace(model, x), option)   # nn.Module, List[Tensor] -> List[Tensor]
    m = torch.jit.script(m)                                   # scriptable, composable, saveable

Unlike the seed, the returned module pickles the compiled code itself (no file paths), and a
symbolic dimension (a name, or {"name", "min", "max"}) serves every size in its range.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import torch

from torchtvm.common.errors import EngineError
from torchtvm.common.options import CompileOptions
from torchtvm.common.progress import JobContext
from torchtvm.deploy import export
from torchtvm.pipeline.compile import CompiledModel, compile_run

_KNOWN = {"input_infos", "default_dtype", "export_dir", "num_outputs", "tuning_n_trials", "tuning_log_file", "target", "threads"}


def _specs(option: dict, exported: bool = False) -> list[dict] | None:
    infos = option.get("input_infos")
    if not infos and exported:
        return None  # the program's own shapes, dynamic dims and ranges
    if not infos:
        raise EngineError("bad_option", "option['input_infos'] is required: a list of (name, shape) pairs, e.g. [('x', (1, 3, 224, 224))].")
    dtype = option.get("default_dtype", "float32")
    specs = []
    for i, info in enumerate(infos):
        if isinstance(info, dict):
            spec = dict(info)
            spec.setdefault("dtype", dtype)
        else:
            try:
                name, shape, *rest = info
            except (TypeError, ValueError):
                raise EngineError("bad_option", f"option['input_infos'][{i}] must be (name, shape) or (name, shape, dtype), not {info!r}.") from None
            spec = {"name": name, "dims": list(shape), "dtype": rest[0] if rest else dtype}
        specs.append(spec)
    return specs


def compile(jit_module, option: dict):  # noqa: A001 - the seed's name
    """Compile a TorchScript module or a torch.export ExportedProgram with TVM; returns
    export.TVMModule (an nn.Module). For a program, input_infos may be left out: its own shapes,
    dynamic dims and ranges are used."""
    exported = isinstance(jit_module, torch.export.ExportedProgram)
    if not exported and not isinstance(jit_module, torch.jit.ScriptModule):
        raise EngineError("not_torchscript", "torchtvm.compile expects a TorchScript module or an ExportedProgram: pass torch.jit.trace(model, example), torch.jit.script(model) or torch.export.export(model, args).")
    unknown = set(option) - _KNOWN
    if unknown:
        warnings.warn(f"torchtvm.compile ignores unknown option keys: {', '.join(sorted(unknown))}", stacklevel=2)
    specs = _specs(option, exported)
    export_dir = os.path.abspath(option.get("export_dir") or "pytorch_compiled")
    os.makedirs(export_dir, exist_ok=True)
    trials = int(option.get("tuning_n_trials") or 0)
    target = option.get("target", "llvm")

    # The engine works on files (as the app does): save the module beside the build outputs.
    fd, model_path = tempfile.mkstemp(prefix="model-", suffix=".pt2" if exported else ".pt", dir=export_dir)
    os.close(fd)
    try:
        if exported:
            torch.export.save(jit_module, model_path)
        else:
            torch.jit.save(jit_module, model_path)
        # The seed's contract is the whole model or an error naming what does not import, so no
        # fallback here (a partly compiled model keeps the model's own calling convention).
        options = CompileOptions.from_params({"model": model_path, **({"inputs": specs} if specs else {}), "out_dir": export_dir, "target": target,
                                              "threads": option.get("threads"), "measure": trials > 0, "fallback": False}).replace(package=False)
        if trials > 0:
            options = options.replace(trials=trials, work_dir=_work_dir(option, export_dir))
        run = compile_run(options, JobContext("seed"))
    finally:
        os.unlink(model_path)

    result = run.result
    ver = result.get("verification") or {}
    if ver.get("skipped"):
        warnings.warn(ver.get("reason") or "The compiled model was not verified.", stacklevel=2)
    elif ver and not ver.get("ok", True):
        warnings.warn("TVM's outputs differ from PyTorch's beyond the dtype's tolerance on random inputs; check the model before deploying it.", stacklevel=2)
    num_outputs = int(result.get("num_outputs") or option.get("num_outputs") or 1)
    if option.get("num_outputs") and int(option["num_outputs"]) != num_outputs:
        raise EngineError("num_outputs", f"option['num_outputs'] is {option['num_outputs']} but the model returns {num_outputs} tensors.")
    assert isinstance(run.built, CompiledModel) and run.info is not None
    return export.exported_module(run.built.lib_path, run.info, run.specs, num_outputs)


def _work_dir(option: dict, export_dir: str) -> str:
    # The seed named a log file; MetaSchedule keeps a work dir: put it beside that file's name.
    log = option.get("tuning_log_file")
    return os.path.join(export_dir, os.path.splitext(os.path.basename(log))[0] + ".ms") if log else os.path.join(export_dir, "tuning")
