"""Running the model the user brought (TorchScript or a torch.export program) on given inputs: the
reference every compiled module is compared with, and the source of the import's sample outputs."""

from __future__ import annotations

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


def run_reference(module: torch.jit.ScriptModule, inputs: list[torch.Tensor], specs: list[InputSpec]) -> list[torch.Tensor]:
    """Run the TorchScript model (or ExportedProgram); a shape or dtype it rejects becomes a sentence."""
    if isinstance(module, torch.export.ExportedProgram):
        module = module.module()
    try:
        with torch.no_grad():
            return _flatten_outputs(module(*inputs))
    except EngineError:
        raise
    except Exception as e:
        given = ", ".join(f"{s.name}: {list(t.shape)} {s.dtype}" for s, t in zip(specs, inputs))
        first = torch_error_summary(e)
        raise EngineError(
            "shape_rejected",
            f"The model rejected inputs of {given}: {first}. Check the input shapes and dtypes.",
            str(e),
        ) from e
