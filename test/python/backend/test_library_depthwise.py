"""Depthwise convolutions with channels in multiples of 16 run the runtime's own NHWC loop
(native/runtime/src/library_depthwise.cc) instead of oneDNN's: it must match PyTorch for every
geometry, epilogue and residual, keep NaN and inf as eager does, and take a symbolic batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchtvm.backend import build as builder
from torchtvm.backend import library
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)
ACTS = {"relu": torch.relu, "relu6": F.relu6, "hardswish": F.hardswish, "none": lambda t: t}


class Depthwise(nn.Module):
    def __init__(self, channels, act, residual=False, bias=True, **conv):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, conv.pop("kernel_size", 3), groups=channels, bias=bias, **{"padding": 1, **conv})
        self.act, self.residual = act, residual

    def forward(self, x):
        y = self.conv(x)
        return self.act(y + x if self.residual else y)


def run(model, x, dynamic_shapes=None):
    ep = torch.export.export(model.eval(), (x,), dynamic_shapes=dynamic_shapes)
    executable, offloads = builder.build_placed(import_program(ep, [x], 1).mod, INFO, None, "library")
    assert [o.kind for o in offloads] == ["depthwise_conv2d"]
    return TvmRunner(executable)


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("residual", [False, True])
def test_epilogues_match_pytorch(act, residual):
    torch.manual_seed(0)
    model, x = Depthwise(32, ACTS[act], residual), torch.randn(2, 32, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(run(model, x).run([x])[0], model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "conv",
    [
        {"stride": 2},
        {"stride": 2, "padding": 0},
        {"kernel_size": 5, "padding": 2},
        {"dilation": 2, "padding": 2},
        {"padding": 0, "bias": False},
        {"kernel_size": (3, 1), "padding": (1, 0), "stride": (1, 2)},
    ],
)
def test_geometries_match_pytorch(conv):
    torch.manual_seed(1)
    model, x = Depthwise(16, F.relu6, **dict(conv)), torch.randn(1, 16, 13, 10)
    with torch.no_grad():
        torch.testing.assert_close(run(model, x).run([x])[0], model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act", ["relu6", "none"])
def test_nan_and_inf_come_out_as_in_pytorch(act):
    torch.manual_seed(2)
    model, x = Depthwise(16, ACTS[act]), torch.randn(1, 16, 8, 8)
    x[0, 0, 3, 3], x[0, 5, 0, 7], x[0, 9, 6, 1] = float("nan"), float("inf"), float("-inf")
    got = run(model, x).run([x])[0]
    with torch.no_grad():
        ref = model(x)
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    assert got.isnan().any()
    finite = torch.isfinite(ref)
    torch.testing.assert_close(got[finite], ref[finite], rtol=1e-5, atol=1e-5)


def test_a_symbolic_batch_runs_one_module():
    torch.manual_seed(3)
    model = Depthwise(16, torch.relu, residual=True)
    batch = torch.export.Dim("batch", min=1, max=8)
    runner = run(model, torch.randn(2, 16, 7, 7), dynamic_shapes={"x": {0: batch}})
    for n in (1, 5, 8):
        x = torch.randn(n, 16, 7, 7)
        with torch.no_grad():
            torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-5, atol=1e-5)
