"""Squeeze-excite blocks (global pool -> 1x1 conv -> activation -> 1x1 conv -> gate -> scale) become
one torchtvm.squeeze_excite call (native/runtime/src/library_squeeze_excite.cc): it must match
PyTorch, NaN and inf included, by both of its algorithms (the runtime's loops and PyTorch's
kernels); placement times both and TVM's own fused kernel, and a candidate made slower on purpose
loses its place."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from torchtvm.backend import build as builder
from torchtvm.backend import library, measure
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, act: nn.Module, gate: nn.Module, scale_other: bool = False):
        super().__init__()
        squeeze = max(4, channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce, self.expand = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.act, self.gate = act, gate
        self.scale_other = scale_other

    def forward(self, x):
        g = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return (x + 1) * g if self.scale_other else x * g


class Net(nn.Module):
    """A convolution, then the block: as in a mobile net, the block gets a channels-last activation
    (an SE on the model's own NCHW input is left to TVM and the library's 1x1 convolutions)."""

    def __init__(self, channels: int, act: nn.Module, gate: nn.Module, scale_other: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.se = SqueezeExcite(channels, act, gate, scale_other)

    def forward(self, x):
        return self.se(torch.relu(self.conv(x)))


def build(model, x, placement="library"):
    ep = torch.export.export(model.eval(), (x,))
    executable, offloads = builder.build_placed(import_program(ep, [x], 1).mod, INFO, None, placement)
    return TvmRunner(executable), offloads


@pytest.mark.parametrize(
    "channels,act,gate,hw",
    [(24, nn.ReLU(), nn.Hardsigmoid(), 14), (20, nn.SiLU(), nn.Sigmoid(), 7), (72, nn.Hardswish(), nn.Hardsigmoid(), 1), (16, nn.ReLU6(), nn.Sigmoid(), 33)],
)
def test_a_block_is_one_call_that_matches_pytorch(channels, act, gate, hw):
    torch.manual_seed(0)
    model, x = Net(channels, act, gate), torch.randn(2, 3, hw, hw)
    runner, offloads = build(model, x)
    assert [o.kind for o in offloads] == ["conv2d", "squeeze_excite"]
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-5, atol=1e-5)


def test_a_gate_scaling_another_tensor_is_not_fused():
    torch.manual_seed(1)
    model, x = Net(16, nn.ReLU(), nn.Hardsigmoid(), scale_other=True), torch.randn(1, 3, 5, 5)
    runner, offloads = build(model, x)
    assert "squeeze_excite" not in [o.kind for o in offloads]
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-5, atol=1e-5)


def _direct(x, model, algorithm: int):
    """torchtvm.squeeze_excite called directly on x (NCHW here, NHWC to the kernel)."""
    import tvm_ffi

    codes = {nn.ReLU: 1, nn.ReLU6: 2, nn.Sigmoid: 3, nn.Hardswish: 5, nn.SiLU: 8, nn.Hardsigmoid: 9}
    r, e = model.reduce, model.expand
    args = [
        x.permute(0, 2, 3, 1).contiguous(),
        r.weight.detach().flatten(1).t().contiguous(),
        r.bias.detach().clone(),
        e.weight.detach().flatten(1).t().contiguous(),
        e.bias.detach().clone(),
    ]
    out = torch.empty_like(args[0])
    tvm_ffi.get_global_func("torchtvm.squeeze_excite")(*args, tvm_ffi.Shape([codes[type(model.act)], codes[type(model.gate)], algorithm]), out)
    return out.permute(0, 3, 1, 2)


@pytest.mark.parametrize("algorithm", [0, 1], ids=["own", "torch"])
@pytest.mark.parametrize("act,gate", [(nn.Hardswish(), nn.Hardsigmoid()), (nn.SiLU(), nn.Sigmoid())])
def test_both_algorithms_match_pytorch_with_nan_and_inf(algorithm, act, gate):
    torch.manual_seed(2)
    model, x = SqueezeExcite(40, act, gate).eval(), torch.randn(2, 40, 9, 9)
    x[0, 3, 1, 1], x[1, 7, 0, 0], x[1, 9, 4, 4] = float("nan"), float("inf"), float("-inf")
    # A weight that carries inf into the hidden layer, where the activation must handle it.
    with torch.no_grad():
        model.reduce.weight[0, 11] = float("inf")
        ref = model(x)
    got = _direct(x, model, algorithm)
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    assert got.isnan().any()
    finite = torch.isfinite(ref)
    torch.testing.assert_close(got[finite], ref[finite], rtol=1e-5, atol=1e-5)


def test_a_slowed_own_kernel_loses_to_pytorchs():
    """The runtime's loops and PyTorch's kernels are both timed; the loops made slower on purpose
    (torchtvm.debug_delay_kernel) are not chosen."""
    from _timing_helpers import timed_slow_and_fast

    torch.manual_seed(3)
    model, x = Net(32, nn.ReLU(), nn.Hardsigmoid()), torch.randn(1, 3, 7, 7)
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    offloads = [o for o in offloads if o.kind == "squeeze_excite"]
    slowed, fast = timed_slow_and_fast(placed, offloads, "squeeze_excite")
    assert slowed.library_ms >= 20.0 and slowed.others_ms["torch"] < 20.0 and slowed.algorithm == "torch"
    assert fast.library_ms < 20.0
    assert (fast.algorithm == "torch") == (fast.others_ms["torch"] < fast.library_ms * measure.MARGIN)


def test_placement_times_the_fused_call_against_tvms_kernel(tmp_path, monkeypatch):
    """An untuned build times the block three ways (the runtime's loops, PyTorch's kernels, TVM's
    own fused kernel), runs it where the times say, and the report shows all three."""
    from torchtvm.common.progress import JobContext
    from torchtvm.pipeline.compile import compile_model

    monkeypatch.setenv("TORCHTVM_HOME", str(tmp_path / "home"))
    torch.manual_seed(4)

    path = str(tmp_path / "net.pt")
    torch.jit.save(torch.jit.trace(Net(24, nn.ReLU(), nn.Hardsigmoid()).eval(), torch.randn(1, 3, 12, 12)), path)
    params = {"model": path, "inputs": [{"name": "x", "dims": [1, 3, 12, 12]}], "out_dir": str(tmp_path / "build"), "measure": False, "edge_values": False}
    placement = compile_model(params, JobContext("test"))["placement"]
    (se,) = [o for o in placement["ops"] if o["kind"] == "squeeze_excite"]
    times = se["alone_ms"]
    assert times["library"] > 0 and times["torch"] > 0 and times["tvm"] > 0
    best_library = min(times["library"], times["torch"])
    assert se["where"] == ("tvm" if times["tvm"] < best_library * measure.MARGIN else "library")
    assert se.get("scope") == "se.pool"
