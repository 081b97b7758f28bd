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
from dataclasses import dataclass, field

import torch

from torchtvm.backend import recurrent
from torchtvm.common.errors import EngineError, torch_error_summary
from torchtvm.common.specs import (
    DEFAULT_SYM_MAX,
    TORCH_TO_NAME,
    InputSpec,
    SymDim,
    random_inputs,
)
from torchtvm.frontend import shape_tensors
from torchtvm.frontend.decompositions import table
from torchtvm.frontend.dtype_promotion import (
    pytorch_binary_dtypes,
    wrapped_scalars_as_default_dtype,
)
from torchtvm.frontend.provenance import tag_program, tag_torchscript, translate
from torchtvm.frontend.shape_math import CUSTOM_CONVERTERS, prepare
from torchtvm.verify.reference import run_reference


@dataclass
class Imported:
    mod: "object"  # tvm.IRModule
    program: torch.export.ExportedProgram
    sample_inputs: list[torch.Tensor]
    num_outputs: int
    # Relax var name -> the node of the model's graph it came from (provenance.py), for placement.
    sources: dict = field(default_factory=dict)
    # Relax var name -> [FX node name, index]: the var holding each FX node's value (provenance.py
    # node_outputs), for comparing each op with PyTorch (verify/per_op.py).
    outputs: dict = field(default_factory=dict)


def check_inputs(module: torch.jit.ScriptModule, specs: list[InputSpec]) -> None:
    # A ScriptFunction (a graph-level fallback segment) has no self argument.
    args = module.schema.arguments if isinstance(module, torch.jit.ScriptFunction) else module.forward.schema.arguments[1:]  # type: ignore[attr-defined]  # forward is a ScriptMethod; the stubs say Callable
    required = [a for a in args if not a.has_default_value()]
    if not (len(required) <= len(specs) <= len(args)):
        names = ", ".join(a.name for a in args)
        want = str(len(args)) if len(required) == len(args) else f"{len(required)} to {len(args)}"
        raise EngineError(
            "input_count",
            f"The model takes {want} input(s) ({names}) but {len(specs)} were described; give one input spec per argument"
            + (" (name, shape and dtype: in the CLI, --input x:1,3,224,224:float32)." if not specs else "."),
        )


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
    from tvm.relax.frontend.torch.exported_program_translator import (
        ExportedProgramImporter,
    )

    known = ExportedProgramImporter().create_convert_map()
    missing: collections.Counter[str] = collections.Counter()
    for node in program.graph.nodes:
        if node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            if name not in known:
                missing[name] += 1
    return dict(missing)


def _scalar_to_float(t):
    # aten::Float of an int or a size: torch's converter calls `.to()` on it, which only tensors have.
    if isinstance(t, torch.Tensor):
        return t.to(dtype=torch.float).item()
    return torch.sym_float(t)


@contextlib.contextmanager
def _converter_fixes():
    """Fixes to torch's TorchScript -> ExportedProgram converter, for the span of one conversion."""
    from torch._export import converter

    cls = converter.TS2FXGraphConverter
    orig = cls.convert_aten_Float

    def convert_aten_Float(self, node):
        inputs = tuple(self.get_fx_value_by_ir_value(i) for i in node.inputs())
        self.name_to_node[node.output().debugName()] = self.fx_graph.call_function(_scalar_to_float, inputs)

    cls.convert_aten_Float = convert_aten_Float
    try:
        yield
    finally:
        cls.convert_aten_Float = orig


def to_exported_program(module: torch.jit.ScriptModule, specs: list[InputSpec], sample: list[torch.Tensor]) -> torch.export.ExportedProgram:
    from torch._export.converter import TS2EPConverter

    with warnings.catch_warnings(), _converter_fixes(), tag_torchscript(module):
        warnings.simplefilter("ignore")
        try:
            ep = TS2EPConverter(module, tuple(sample)).convert()
        except Exception as e:
            msg = str(e)
            node = re.search(r"failed for node (\S+)", msg)
            where = f" at TorchScript node {node.group(1)}" if node else ""
            raise EngineError(
                "import_failed",
                f"TorchScript could not be converted for TVM{where}: {torch_error_summary(e)}. "
                "Data-dependent loops are not supported yet; trace the model with torch.jit.trace if it has none.",
                msg,
            ) from e

        wrapped_scalars_as_default_dtype(ep)  # traced `int_x * 0.5` is float32, not float64
        return _export_with_specs(ep.module(), sample, specs, "model")


def _export_with_specs(module, sample, specs: list[InputSpec], what: str) -> torch.export.ExportedProgram:
    """torch.export with the user's dynamic dims; a refusal is a sentence naming the cause."""
    try:
        return torch.export.export(module, tuple(sample), dynamic_shapes=_dynamic_shapes(specs), strict=False)
    except Exception as e:
        raise EngineError(
            "shape_rejected" if "Constraints violated" in str(e) or "specialized" in str(e) else "import_failed",
            f"The {what} could not be exported with the given input specs: {torch_error_summary(e)}. "
            f"A symbolic dimension the {what} needs to be fixed must be given as a number.",
            str(e),
        ) from e


def program_specs(ep: torch.export.ExportedProgram) -> list[InputSpec]:
    """Default input specs of an ExportedProgram: its user inputs' shapes and dtypes, dynamic dims
    as symbols with the program's ranges (one name per torch symbol, shared across inputs)."""

    by_name = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    names: dict[str, SymDim] = {}
    specs = []
    for arg in ep.graph_signature.input_specs:
        if arg.kind != torch.export.graph_signature.InputKind.USER_INPUT:
            continue
        node = by_name.get(arg.arg.name)
        val = node.meta.get("val") if node is not None else None
        if not isinstance(val, torch.Tensor):
            raise EngineError("unsupported_input", f"Input {arg.arg.name} of the program is not a tensor; only tensor inputs are supported.")
        if val.dtype not in TORCH_TO_NAME:
            raise EngineError("unsupported_input", f"Input {arg.arg.name} is a {val.dtype} tensor, which the compiler does not support.")
        dims = []
        for i, d in enumerate(val.shape):
            if isinstance(d, int):
                dims.append(int(d))
                continue
            key = str(d.node.expr)
            if key not in names:
                vr = ep.range_constraints.get(d.node.expr)
                lo = max(1, int(vr.lower)) if vr is not None and vr.lower.is_finite else 1
                hi = int(vr.upper) if vr is not None and vr.upper.is_finite else DEFAULT_SYM_MAX
                hi = min(hi, DEFAULT_SYM_MAX)
                taken = {sd.name for sd in names.values()}
                names[key] = SymDim("batch" if i == 0 and "batch" not in taken else f"{arg.arg.name}_{i}", lo, max(lo, hi))
            dims.append(names[key])
        specs.append(InputSpec(arg.arg.name, tuple(dims), TORCH_TO_NAME[val.dtype]))
    return specs


def _import_exported(ep: torch.export.ExportedProgram, specs: list[InputSpec], progress) -> Imported:
    n_user = len(ep.graph_signature.user_inputs)
    if len(specs) != n_user:
        raise EngineError("input_count", f"The program takes {n_user} input(s) ({', '.join(ep.graph_signature.user_inputs)}) but {len(specs)} were described; give one input spec per argument.")
    sample = random_inputs(specs)

    tag_program(ep)
    module = ep.module()
    progress("running the program in PyTorch on sample inputs")
    ref = run_reference(module, sample, specs)
    # Re-export with the user's specs (sizes pinned, symbols and ranges as described), as for TorchScript.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = _export_with_specs(module, sample, specs, "program")
    return import_program(ep, sample, len(ref), progress)


def import_torchscript(module, specs: list[InputSpec], progress=lambda msg: None) -> Imported:
    """TorchScript module or ExportedProgram -> Relax."""
    if isinstance(module, torch.export.ExportedProgram):
        return _import_exported(module, specs, progress)
    check_inputs(module, specs)
    sample = random_inputs(specs)
    progress("running the model in PyTorch on sample inputs")
    ref = run_reference(module, sample, specs)
    progress("converting TorchScript to an ExportedProgram")
    ep = to_exported_program(module, specs, sample)
    return import_program(ep, sample, len(ref), progress)


def decompose(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """torch's own decompositions (fast-path attention, sdpa, RNN cells, upsample_*, group_norm...)
    down to core aten, before asking which ops TVM lacks: an op is unsupported only when neither
    an importer nor a decomposition exists. TVM would run them too, but after our check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ep.run_decompositions(table())
        except Exception as e:
            raise EngineError("import_failed", f"torch could not decompose the model into core aten ops: {torch_error_summary(e)}.", str(e)) from e


def import_program(ep: torch.export.ExportedProgram, sample: list[torch.Tensor], num_outputs: int, progress=lambda msg: None) -> Imported:
    """ExportedProgram -> Relax: decompose, name what TVM lacks, translate."""
    progress("decomposing into core aten ops")
    ep = decompose(ep)

    ep = prepare(ep)
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
    try:

        with _half_precision_accumulates_in_own_dtype(), pytorch_binary_dtypes():
            outputs: dict = {}
            mod, sources = translate(ep, {**CUSTOM_CONVERTERS, **recurrent.CONVERTERS}, outputs)
    except Exception as e:
        raise EngineError("import_failed", f"TVM could not import the model: {torch_error_summary(e)}.", str(e)) from e
    mod = shape_tensors.resolve(mod)
    return Imported(mod=mod, program=ep, sample_inputs=sample, num_outputs=num_outputs, sources=sources, outputs=outputs)


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
