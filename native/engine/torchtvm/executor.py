"""Running a compiled Relax executable on torch tensors (in the engine process, for verification
and latency; deployments use the C++ runtime op instead)."""

from __future__ import annotations

import torch


class TvmRunner:
    def __init__(self, executable, device_kind: str = "llvm"):
        import tvm
        from tvm import relax

        self.dev = tvm.cuda(0) if device_kind == "cuda" else tvm.cpu(0)
        self.vm = relax.VirtualMachine(executable, self.dev)
        self._tvm = tvm

    def to_tvm(self, inputs: list[torch.Tensor]):
        return [self._tvm.runtime.from_dlpack(_dense(t)) if t.dtype != torch.bool else self._tvm.runtime.tensor(t.numpy(), self.dev) for t in inputs]

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.vm["main"](*self.to_tvm(inputs))
        # Every output is the caller's own: TVM may hand out a folded constant it keeps (the same
        # buffer every call), an input passed through, or one buffer twice. The engine only runs
        # this to verify, so a copy costs nothing that matters (the runtime op copies only those).
        return [torch.from_dlpack(o).clone() for o in _flatten(out)]

    def time_ms(self, inputs: list[torch.Tensor], repeat: int, number: int = 1) -> list[float]:
        """Per-run latency in ms, measured by TVM's own evaluator (no Python in the timed loop)."""
        f = self.vm.time_evaluator("main", self.dev, number=number, repeat=repeat, min_repeat_ms=0)
        res = f(*self.to_tvm(inputs))
        return [r * 1e3 for r in res.results]


def _dense(t: torch.Tensor) -> torch.Tensor:
    """What TVM can read: materialised neg/conj bits (DLPack has none), dense strides and 64-byte
    alignment (the generated kernels assume both)."""
    t = t.resolve_conj().resolve_neg()
    if not t.is_contiguous() or (t.numel() and t.data_ptr() % 64):
        t = t.contiguous() if not t.is_contiguous() else t.clone()
        if t.numel() and t.data_ptr() % 64:  # pragma: no cover - torch allocates 64-byte aligned
            t = t.clone()
    return t


def _flatten(out):
    try:
        from tvm_ffi import Array  # tuples come back as ffi Arrays
    except Exception:  # pragma: no cover
        Array = tuple
    if isinstance(out, (list, tuple, Array)):
        flat = []
        for o in out:
            flat.extend(_flatten(o))
        return flat
    return [out]
