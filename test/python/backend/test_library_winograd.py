"""The runtime's Winograd F(4x4, 3x3) convolution (native/runtime/src/library_winograd.cc): a library
algorithm that per-op placement may give a float32 3x3 stride-1 convolution. It must match PyTorch
for every epilogue, padding and ragged tile, keep PyTorch's NaN / inf results (a non-finite value
sends the call back to the direct convolution), and be what placement picks only where it timed
faster."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchtvm.backend import build as builder
from torchtvm.backend import library, measure
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)


class Conv3x3(nn.Module):
    def __init__(self, cin, cout, act, residual=False, bias=True, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=padding, bias=bias)
        self.act, self.residual = act, residual

    def forward(self, x, r):
        y = self.conv(x)
        return self.act(y + r if self.residual else y)


def build_winograd(model, inputs):
    """Build with every convolution Winograd can take given that kernel; returns (runner, offloads)."""
    mod = import_program(torch.export.export(model.eval(), inputs), list(inputs), 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    executable = builder.compile_placed(library.use_algorithms(placed, offloads, {o.name: "winograd" for o in offloads if o.winograd_ok}), INFO)
    return TvmRunner(executable), offloads


ACTS = {"relu": torch.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "none": lambda t: t}


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize(
    "n,cin,cout,h,w,padding,bias",
    [
        (1, 16, 32, 8, 8, 1, True),  # whole tiles
        (2, 32, 16, 9, 7, 1, False),  # ragged tiles at the bottom and right edges, batch 2
        (1, 16, 16, 10, 11, 0, True),  # no padding
    ],
)
def test_winograd_matches_pytorch(act, residual, n, cin, cout, h, w, padding, bias):
    torch.manual_seed(0)
    model = Conv3x3(cin, cout, ACTS[act], residual, bias, padding)
    oh, ow = h + 2 * padding - 2, w + 2 * padding - 2
    x, r = torch.randn(n, cin, h, w), torch.randn(n, cout, oh, ow)
    runner, offloads = build_winograd(model, (x, r))
    assert [o.algorithm for o in offloads] == ["winograd"]
    with torch.no_grad():
        ref = model(x, r)
    torch.testing.assert_close(runner.run([x, r])[0], ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("act", ["relu", "none"])
def test_winograd_keeps_pytorchs_nan_and_inf(act):
    """One inf turns a whole Winograd tile into NaN; the call is then computed the direct way."""
    torch.manual_seed(1)
    model = Conv3x3(16, 16, ACTS[act], residual=True)
    x, r = torch.randn(1, 16, 12, 12), torch.randn(1, 16, 12, 12)
    x[0, 0, 5, 5], x[0, 3, 0, 11], x[0, 7, 9, 2] = float("inf"), float("-inf"), float("nan")
    runner, offloads = build_winograd(model, (x, r))
    assert [o.algorithm for o in offloads] == ["winograd"]
    got = runner.run([x, r])[0]
    with torch.no_grad():
        ref = model(x, r)
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    assert got.isnan().any() and torch.isfinite(ref).any()
    finite = torch.isfinite(ref)
    torch.testing.assert_close(got[finite], ref[finite], rtol=1e-4, atol=1e-4)
    # and the next finite input takes the Winograd path again, with the right answer
    x2 = torch.randn_like(x)
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x2, r])[0], model(x2, r), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "cin,cout,conv",
    [(8, 16, {}), (16, 24, {}), (16, 16, {"stride": 2}), (16, 16, {"dilation": 2, "padding": 2}), (16, 16, {"groups": 2})],
)
def test_winograd_is_offered_only_where_the_kernel_applies(cin, cout, conv):
    """Channels in blocks of 16, stride 1, no dilation, one group: anything else stays direct."""
    model = nn.Conv2d(cin, cout, 3, **{"padding": 1, **conv})
    x = torch.randn(1, cin, 9, 9)
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    _, planned = builder.place(mod, INFO, "library")
    assert len(planned) == 1 and not planned[0].winograd_ok
    placed, offloads = builder.place(mod, INFO, "library")
    library.use_algorithms(placed, offloads, {o.name: "winograd" for o in offloads if o.winograd_ok})
    assert offloads[0].algorithm == ""


def test_the_default_build_times_winograd_and_uses_it_only_where_faster(tmp_path):
    """Untuned `auto` times each convolution Winograd can take both ways, on the model's weights,
    and gives it Winograd only where that was clearly faster; the report shows the times."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1)).eval()
    x = torch.randn(1, 16, 24, 24)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "auto")
    timed = measure.time_library_calls(placed, offloads, rounds=2, calls=5)
    # Both convolutions are timed as ATen's own convolution and as the runtime's direct loop (16 x 3x3 values per
    # patch) too; only the first has a Winograd form.
    assert list(timed) == [o.name for o in offloads]
    t, s = timed[offloads[0].name], timed[offloads[1].name]
    assert t.library_ms > 0 and t.winograd_ms > 0 and t.tvm_ms is None and t.where == "library"
    assert s.winograd_ms is None and set(s.others_ms) == {"torch", "direct"}
    assert t.winograd == (t.winograd_ms < t.library_ms * measure.MARGIN and t.winograd_ms <= min(t.others_ms.values()))

    path = str(tmp_path / "net.pt")
    torch.jit.save(torch.jit.trace(model, x), path)
    params = {"model": path, "inputs": [{"name": "x", "dims": [1, 16, 24, 24]}], "out_dir": str(tmp_path / "build"), "measure": False, "edge_values": False}
    placement = compile_model(params, JobContext("test"))["placement"]
    first, strided = [o for o in placement["ops"] if o["kind"] == "conv2d"]
    assert set(first["alone_ms"]) == {"library", "winograd", "torch", "direct"} and set(strided["alone_ms"]) == {"library", "torch", "direct"}
    alone = first["alone_ms"]
    chose = alone["winograd"] < alone["library"] * measure.MARGIN and alone["winograd"] <= min(alone["torch"], alone["direct"])
    assert (first.get("algorithm") == "winograd") == chose and strided.get("algorithm") in (None, "torch", "direct")
    assert placement["note"].startswith("auto: 2 library call(s) timed every way they can run")
    assert ("1 as Winograd (of 1 that can take it)" in placement["note"]) == chose


def test_the_choice_follows_the_times():
    """Never a candidate that measured slower; a tie keeps the default."""
    slower = measure.OpTiming("a", library_ms=1.0, tvm_ms=5.0, winograd_ms=1.2)
    faster = measure.OpTiming("b", library_ms=1.0, tvm_ms=5.0, winograd_ms=0.5)
    beaten = measure.OpTiming("c", library_ms=1.0, tvm_ms=0.3, winograd_ms=0.5)
    tie = measure.OpTiming("d", library_ms=1.0, tvm_ms=None, winograd_ms=0.97)
    assert (slower.winograd, slower.where) == (False, "library")
    assert (faster.winograd, faster.where) == (True, "library")
    assert beaten.where == "tvm"
    assert (tie.winograd, tie.where) == (False, "library")


def test_a_built_model_still_runs_right_after_the_timing_drops_the_weight_caches():
    """The timing packs the module's own constants (not a built model's copies) and then drops
    every weight cache: a model already running packs its weights again at its next call."""
    torch.manual_seed(3)
    model = Conv3x3(16, 16, torch.relu)
    x, r = torch.randn(1, 16, 10, 10), torch.randn(1, 16, 10, 10)
    runner, _ = build_winograd(model, (x, r))
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x, r])[0], model(x, r), rtol=1e-4, atol=1e-4)
    mod = import_program(torch.export.export(model.eval(), (x, r)), [x, r], 1).mod
    placed, offloads = builder.place(mod, INFO, "auto")
    assert measure.time_library_calls(placed, offloads, rounds=1, calls=2)
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x, r])[0], model(x, r), rtol=1e-4, atol=1e-4)
