"""PyTorch's type promotion for binary ops while TVM imports an ExportedProgram.

TVM 0.27's importer promotes two tensors with `torch.promote_types`, which ignores PyTorch's rule
that a 0-dim tensor does not raise the dtype of a dimensioned one: a traced `x * 0.5` (the 0.5 is a
lifted float64 0-dim constant) came out float64. With a Python scalar it casts the scalar to the
tensor's dtype, so `int_x * 0.5` became `int_x * 0` and `int_x / 255.0` an integer division.

Here each binary op computes in the dtype PyTorch computes in: the result dtype recorded on the FX
node (`meta["val"]`), or for comparisons (bool result) `torch.result_type` of the operands. Ops
whose node carries no tensor value (shape arithmetic on symbols) keep TVM's own handling.
"""

from __future__ import annotations

import contextlib

import torch


def _stand_in(arg):
    """A value torch.result_type treats like `arg` (a node's fake tensor, or a Python scalar)."""
    from torch import fx

    if isinstance(arg, fx.Node):
        val = arg.meta.get("val")
        if isinstance(val, torch.Tensor):
            return torch.empty(() if val.dim() == 0 else (1,), dtype=val.dtype)
        return None
    if isinstance(arg, (bool, int, float)):
        return arg
    return None


def computation_dtype(node) -> torch.dtype | None:
    """The dtype PyTorch computes `node` (a binary aten op) in, or None when it cannot be told."""
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or len(node.args) < 2:
        return None
    if val.dtype != torch.bool:
        return val.dtype
    a, b = _stand_in(node.args[0]), _stand_in(node.args[1])
    if a is None or b is None or not (isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)):
        return None
    try:
        return torch.result_type(a, b)
    except Exception:
        return None


_TORCH_TO_TVM = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


@contextlib.contextmanager
def pytorch_binary_dtypes():
    """While importing: binary ops compute in PyTorch's dtype (see the module docstring)."""
    from tvm import relax
    from tvm.relax.frontend.torch.base_fx_graph_translator import BaseFXGraphImporter

    orig = BaseFXGraphImporter._binary_op

    def _binary_op(self, relax_op, intrinsic_op):
        fallback = orig(self, relax_op, intrinsic_op)

        def convert(node):
            want = computation_dtype(node)
            dtype = _TORCH_TO_TVM.get(want)
            if dtype is None:
                return fallback(node)
            lhs, rhs = self.retrieve_args(node)
            if not any(isinstance(v, relax.Expr) for v in (lhs, rhs)):
                return fallback(node)

            def cast(v):
                if isinstance(v, relax.Expr):
                    info = getattr(v, "ty", None)
                    if not isinstance(info, relax.TensorType):
                        return None
                    return v if str(info.dtype) == dtype else self.block_builder.emit(relax.op.astype(v, dtype))
                if isinstance(v, (bool, int, float)):
                    return relax.const(v, dtype)
                return None

            a, b = cast(lhs), cast(rhs)
            if a is None or b is None:
                return fallback(node)
            return self.block_builder.emit(relax_op(a, b))

        return convert

    BaseFXGraphImporter._binary_op = _binary_op
    try:
        yield
    finally:
        BaseFXGraphImporter._binary_op = orig


def wrapped_scalars_as_default_dtype(ep) -> None:
    """Undo a loss in torch's TorchScript -> ExportedProgram converter, in place.

    A traced `x * 0.5` holds 0.5 as a 0-dim float64 constant tensor that TorchScript treats as a
    "wrapped number" (it does not raise the dtype: int64 x * 0.5 is float32 in TorchScript). The
    converter lifts it as a plain float64 tensor, and PyTorch's 0-dim rule then makes `int_x * 0.5`
    float64. Giving such constants the default dtype restores TorchScript's result dtype; with a
    floating-point operand nothing changes (a 0-dim tensor never raises a float tensor's dtype).
    Call before re-exporting `ep.module()`.
    """
    default = torch.get_default_dtype()
    for name, value in list(ep.constants.items()):
        if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.float64:
            ep.constants[name] = value.to(default)
