"""Running a compiled Relax executable on torch tensors (in the engine process, for verification
and latency; deployments use the C++ runtime op instead)."""

from __future__ import annotations

import os

import torch

from torchtvm.common.runtime_library import load_library


class TvmRunner:
    def __init__(self, executable, device_kind: str = "llvm"):
        import tvm
        from tvm import relax

        self.dev = tvm.cuda(0) if device_kind == "cuda" else tvm.cpu(0)
        self.vm = relax.VirtualMachine(executable, self.dev)
        self._tvm = tvm

    @classmethod
    def from_library(cls, path: str, device_kind: str = "llvm") -> "TvmRunner":
        """Run the exported shared library, as the runtime op does: the same code, and TVM's
        parallel loops on torch's thread pool (beside oneDNN, which uses that pool too)."""
        import shutil
        import tempfile

        import tvm

        # dlopen returns the library already loaded under the same path, even when the file has
        # been replaced since (a rebuild into the same out_dir): load a private copy, as the
        # runtime op does.
        fd, private = tempfile.mkstemp(prefix="torchtvm-", suffix=".so")
        os.close(fd)
        try:
            shutil.copyfile(path, private)
            lib = tvm.runtime.load_module(private)
            if device_kind == "llvm":
                route_parallel_to_torch(private)
        finally:
            os.unlink(private)
        return cls(lib, device_kind)

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


def route_parallel_to_torch(path: str) -> bool:
    """Point a loaded compiled library's parallel loops at torch's OpenMP pool
    (native/runtime/src/library_kernels.cc); False when the runtime library is not built."""
    import tvm_ffi

    load_library()
    fn = tvm_ffi.get_global_func("torchtvm.route_parallel_to_torch", allow_missing=True)
    return bool(fn(path)) if fn is not None else False


def _contiguous_strides(shape) -> list[int]:
    strides, acc = [], 1
    for n in reversed(list(shape)):
        strides.append(acc)
        acc *= max(int(n), 1)
    return strides[::-1]


def _dense(t: torch.Tensor) -> torch.Tensor:
    """What TVM can read: materialised neg/conj bits (DLPack has none), dense strides and 64-byte
    alignment (the generated kernels assume both)."""
    t = t.resolve_conj().resolve_neg()
    if t.is_contiguous() and t.dim() and list(t.stride()) != _contiguous_strides(t.shape):
        # torch calls x.t() of an [n, 1] tensor contiguous; DLPack would carry its odd strides
        t = t.as_strided(t.shape, _contiguous_strides(t.shape))
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
