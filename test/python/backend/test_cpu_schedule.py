"""The default CPU schedule (cpu_schedule.ParallelVectorize) for kernels nobody tuned: convs and
dense layers come out parallel, vectorized and accumulating in registers, and still match PyTorch,
including with a symbolic batch (a register tile with a predicated tail; sizes 1, 5 and 8), an odd width (7) and a prime one (11)."""

import pytest
import torch
import torch.nn as nn

from torchtvm.backend import build as builder
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_torchscript
from torchtvm.common.specs import parse_specs

from tvm import tirx


class ConvDense(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16 * width, 24)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean(2)
        return self.fc(y.flatten(1))


def _lowered_and_runner(width, dims):
    torch.manual_seed(0)
    model = ConvDense(width).eval()
    ts = torch.jit.trace(model, torch.randn(2, 3, 8, width))
    imported = import_torchscript(ts, parse_specs([{"name": "x", "dims": dims, "dtype": "float32"}]))
    info = builder.resolve_target("llvm", 2)
    lowered = builder.lower(builder.place(imported.mod, info, "tvm")[0], info)
    scripts = {gv.name_hint: f.script() for gv, f in lowered.functions.items() if isinstance(f, tirx.PrimFunc)}
    return model, scripts, TvmRunner(builder.build(imported.mod, info, placement="tvm"), "llvm")  # TVM's own kernels, as scheduled


@pytest.mark.parametrize("width", [32, 7, 11])
def test_conv_and_dense_are_parallel_and_vectorized_and_match(width):
    model, scripts, runner = _lowered_and_runner(width, [2, 3, 8, width])
    conv = next(s for n, s in scripts.items() if "conv2d" in n)
    dense = next(s for n, s in scripts.items() if "matmul" in n)
    for text in (conv, dense):
        assert "T.parallel(" in text
    if width != 11:  # 32 by 8, 7 by 7 (LLVM pads it); no width up to 8 divides 11: only parallel
        assert "T.vectorized(" in conv and 'scope="local"' in conv and "T.unroll(" in conv
    assert "T.vectorized(" in dense  # 24 output features
    x = torch.randn(2, 3, 8, width)
    (got,) = runner.run([x])
    torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)


def test_symbolic_batch_is_parallelized_and_matches():
    dims = [{"name": "batch", "min": 1, "max": 8}, 3, 8, 32]
    model, scripts, runner = _lowered_and_runner(32, dims)
    assert all("T.parallel(" in s for n, s in scripts.items() if "conv2d" in n)
    # the dense layer's rows (the symbolic batch) are a register tile with a predicated tail
    assert all("T.unroll(" in s and "T.vectorized(" in s for n, s in scripts.items() if "matmul" in n)
    for b in (1, 5, 8):
        x = torch.randn(b, 3, 8, 32)
        (got,) = runner.run([x])
        torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)
