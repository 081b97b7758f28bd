"""TorchScript -> Relax.

Route: torch's TorchScript -> ExportedProgram converter, a re-export that pins the user's input
specs (static sizes, named symbolic dims with ranges), then TVM's `from_exported_program`.
Failures name the TorchScript node or the aten ops that could not be converted.
"""

from __future__ import annotations

import collections
import contextlib
import re
import warnings
from dataclasses import dataclass

import torch

from .errors import EngineError
from .specs import InputSpec, SymDim, random_inputs


@dataclass
class Imported:
    mod: "object"  # tvm.IRModule
    program: torch.export.ExportedProgram
    sample_inputs: list[torch.Tensor]
    num_outputs: int


def check_inputs(module: torch.jit.ScriptModule, specs: list[InputSpec]) -> None:
    args = module.forward.schema.arguments[1:]
    required = [a for a in args if not a.has_default_value()]
    if not (len(required) <= len(specs) <= len(args)):
        names = ", ".join(a.name for a in args)
        want = str(len(args)) if len(required) == len(args) else f"{len(required)} to {len(args)}"
        raise EngineError(
            "input_count",
            f"The model takes {want} input(s) ({names}) but {len(specs)} were described; give one input spec per argument.",
        )


def _flatten_outputs(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        flat = []
        for o in out:
            flat.extend(_flatten_outputs(o))
        return flat
    raise EngineError("unsupported_output", f"The model returns a {type(out).__name__}; only tensors, lists and tuples of tensors are supported.")


def run_reference(module: torch.jit.ScriptModule, inputs: list[torch.Tensor], specs: list[InputSpec]) -> list[torch.Tensor]:
    """Run the TorchScript model; a shape or dtype it rejects becomes a sentence."""
    try:
        with torch.no_grad():
            return _flatten_outputs(module(*inputs))
    except EngineError:
        raise
    except Exception as e:
        given = ", ".join(f"{s.name}: {list(t.shape)} {s.dtype}" for s, t in zip(specs, inputs))
        first = _torch_error_summary(e)
        raise EngineError(
            "shape_rejected",
            f"The model rejected inputs of {given}: {first}. Check the input shapes and dtypes.",
            str(e),
        ) from e


def _torch_error_summary(e: Exception) -> str:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    # TorchScript errors put the real cause last, after the interpreter's traceback.
    for l in reversed(lines):
        if "Error" in l or "error" in l or "size" in l or "shape" in l:
            return l[:300]
    return lines[-1][:300] if lines else type(e).__name__


def _dynamic_shapes(specs: list[InputSpec]):
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    any_dynamic = False
    for s in specs:
        per = {}
        for i, d in enumerate(s.dims):
            if isinstance(d, SymDim):
                any_dynamic = True
                if d.name not in dims:
                    dims[d.name] = torch.export.Dim(d.name, min=d.min, max=d.max)
                per[i] = dims[d.name]
        shapes.append(per or None)
    return (tuple(shapes) if any_dynamic else None)


def unsupported_ops(program: torch.export.ExportedProgram) -> dict[str, int]:
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    known = ExportedProgramImporter().create_convert_map()
    missing: collections.Counter[str] = collections.Counter()
    for node in program.graph.nodes:
        if node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            if name not in known:
                missing[name] += 1
    return dict(missing)


def to_exported_program(module: torch.jit.ScriptModule, specs: list[InputSpec], sample: list[torch.Tensor]) -> torch.export.ExportedProgram:
    from torch._export.converter import TS2EPConverter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ep = TS2EPConverter(module, tuple(sample)).convert()
        except Exception as e:
            msg = str(e)
            node = re.search(r"failed for node (\S+)", msg)
            where = f" at TorchScript node {node.group(1)}" if node else ""
            raise EngineError(
                "import_failed",
                f"TorchScript could not be converted for TVM{where}: {_torch_error_summary(e)}. "
                "Data-dependent loops are not supported yet; trace the model with torch.jit.trace if it has none.",
                msg,
            ) from e
        try:
            return torch.export.export(ep.module(), tuple(sample), dynamic_shapes=_dynamic_shapes(specs), strict=False)
        except Exception as e:
            raise EngineError(
                "shape_rejected" if "Constraints violated" in str(e) or "specialized" in str(e) else "import_failed",
                f"The model could not be exported with the given input specs: {_torch_error_summary(e)}. "
                "A symbolic dimension the model needs to be fixed must be given as a number.",
                str(e),
            ) from e


def import_torchscript(module: torch.jit.ScriptModule, specs: list[InputSpec], progress=lambda msg: None) -> Imported:
    check_inputs(module, specs)
    sample = random_inputs(specs)
    progress("running the model in PyTorch on sample inputs")
    ref = run_reference(module, sample, specs)
    progress("converting TorchScript to an ExportedProgram")
    ep = to_exported_program(module, specs, sample)
    missing = unsupported_ops(ep)
    if missing:
        listed = ", ".join(f"{k} (x{v})" for k, v in sorted(missing.items(), key=lambda kv: -kv[1]))
        raise EngineError(
            "unsupported_op",
            f"TVM's importer does not support {len(missing)} op(s) in this model: {listed}. "
            "Rewrite those parts of the model, or keep them in PyTorch.",
            "\n".join(missing),
        )
    progress("translating to TVM Relax")
    from tvm.relax.frontend.torch import from_exported_program

    try:
        with _half_precision_accumulates_in_own_dtype():
            mod = from_exported_program(ep, keep_params_as_input=False, unwrap_unit_return_tuple=False)
    except Exception as e:
        raise EngineError("import_failed", f"TVM could not import the model: {_torch_error_summary(e)}.", str(e)) from e
    return Imported(mod=mod, program=ep, sample_inputs=sample, num_outputs=len(ref))


@contextlib.contextmanager
def _half_precision_accumulates_in_own_dtype():
    """TVM 0.27's torch frontend builds conv/linear/matmul with out_dtype="float32" whatever the
    input dtype, which breaks float16/bfloat16 models (the fp32 result meets an fp16 bias). While
    importing, keep such ops in their input's dtype, as PyTorch does."""
    from tvm import relax

    patched = []

    def wrap(fn, pos):
        def call(*args, **kw):
            info = getattr(args[0], "ty", None) or getattr(args[0], "struct_info", None)
            dt = str(getattr(info, "dtype", ""))
            if dt in ("float16", "bfloat16"):
                if kw.get("out_dtype") == "float32":
                    kw["out_dtype"] = dt
                elif len(args) > pos and args[pos] == "float32":
                    args = args[:pos] + (dt,) + args[pos + 1 :]
            return fn(*args, **kw)

        return call

    targets = [(relax.op, "linear", 3), (relax.op.linear_algebra, "matmul", 2), (relax.op, "matmul", 2)]
    targets += [(relax.op.nn, n, 99) for n in ("conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose")]
    try:
        for mod, name, pos in targets:
            if hasattr(mod, name):
                orig = getattr(mod, name)
                patched.append((mod, name, orig))
                setattr(mod, name, wrap(orig, pos))
        yield
    finally:
        for mod, name, orig in reversed(patched):
            setattr(mod, name, orig)
