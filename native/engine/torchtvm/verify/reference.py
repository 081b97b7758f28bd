"""Running the model the user brought (TorchScript or a torch.export program) on given inputs: the
reference every compiled module is compared with, and the source of the import's sample outputs."""

from __future__ import annotations

import keyword

import torch

from torchtvm.common.errors import EngineError, torch_error_summary
from torchtvm.common.specs import InputSpec


def _flatten_outputs(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        flat = []
        for o in out:
            flat.extend(_flatten_outputs(o))
        return flat
    raise EngineError("unsupported_output", f"The model returns a {type(out).__name__}; only tensors, lists and tuples of tensors are supported.")


def output_structure(out, _next: list[int] | None = None):
    """The shape of a model's output as a JSON-able tree, its leaves numbered in the order
    `_flatten_outputs` lists them: a tensor is its index (an int), a tuple {"tuple": [...]} and a
    list {"list": [...]}, nested. Other outputs are refused as `_flatten_outputs` refuses them."""
    counter = [0] if _next is None else _next
    if isinstance(out, torch.Tensor):
        counter[0] += 1
        return counter[0] - 1
    if isinstance(out, (list, tuple)):
        return {"tuple" if isinstance(out, tuple) else "list": [output_structure(o, counter) for o in out]}
    raise EngineError("unsupported_output", f"The model returns a {type(out).__name__}; only tensors, lists and tuples of tensors are supported.")


def structure_leaves(tree) -> int:
    """How many tensors an output_structure tree holds."""
    if isinstance(tree, int):
        return 1
    return sum(structure_leaves(c) for c in next(iter(tree.values())))


# Names the exported wrapper's generated forward uses itself: an argument may not take them.
_RESERVED = {"self", "torch", "Tensor", "List", "Tuple", "_check_args", "_torchtvm_outputs"}


def argument_names(module, specs: list[InputSpec]) -> list[str]:
    """The names of the model's own arguments the specs describe, in order: TorchScript's
    `forward` schema (without self), or an ExportedProgram's user inputs. A name that cannot be a
    Python argument (or repeats one) becomes the spec's name, or else input<i>."""
    try:
        if isinstance(module, torch.export.ExportedProgram):
            raw = list(module.graph_signature.user_inputs)
        elif isinstance(module, torch.jit.ScriptFunction):
            raw = [a.name for a in module.schema.arguments]  # type: ignore[attr-defined]  # schema is a property at runtime; the stubs make it a method
        else:
            raw = [a.name for a in module.forward.schema.arguments[1:]]
    except Exception:
        raw = []
    names: list[str] = []
    for i, spec in enumerate(specs):
        for cand in (raw[i] if i < len(raw) else None, getattr(spec, "name", None), f"input{i}"):
            if isinstance(cand, str) and cand.isidentifier() and not keyword.iskeyword(cand) and cand not in _RESERVED and cand not in names:
                names.append(cand)
                break
        else:
            names.append(f"_input{i}")
    return names


def model_signature(module, inputs: list[torch.Tensor], specs: list[InputSpec]) -> dict:
    """What a drop-in replacement of the model takes and returns: {"arguments": [names],
    "outputs": output_structure}, from one run of the model on `inputs`."""
    return {"arguments": argument_names(module, specs), "outputs": output_structure(call_model(module, inputs, specs))}


def call_model(module, inputs: list[torch.Tensor], specs: list[InputSpec]):
    """The model's own output (tensors, tuples, lists as it returns them) on `inputs`, without
    gradients; a shape or dtype it rejects becomes a sentence."""
    if isinstance(module, torch.export.ExportedProgram):
        module = module.module()
    try:
        with torch.no_grad():
            return module(*inputs)
    except Exception as e:
        given = ", ".join(f"{s.name}: {list(t.shape)} {s.dtype}" for s, t in zip(specs, inputs))
        first = torch_error_summary(e)
        raise EngineError(
            "shape_rejected",
            f"The model rejected inputs of {given}: {first}. Check the input shapes and dtypes.",
            str(e),
        ) from e


def run_reference(module: torch.nn.Module | torch.export.ExportedProgram, inputs: list[torch.Tensor], specs: list[InputSpec]) -> list[torch.Tensor]:
    """Run the TorchScript model (or ExportedProgram), its outputs flattened to a list of tensors."""
    return _flatten_outputs(call_model(module, inputs, specs))
