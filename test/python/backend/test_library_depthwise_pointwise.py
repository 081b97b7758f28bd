"""A depthwise convolution whose output only a 1x1 convolution reads runs, where that times faster
here, as one call (torchtvm.depthwise_pointwise, library_depthwise.cc DepthwisePointwise): the
depthwise loop on a few rows into a thread's buffer, then the runtime's GEMM from there. It must
give PyTorch's numbers (NaN and inf too) for every geometry and epilogue the two calls take, and
be chosen only when timed faster than the two calls."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchtvm.backend import build as builder
from torchtvm.backend import depthwise_pointwise, library, measure
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)
ACTS = {"relu6": F.relu6, "hardswish": F.hardswish, "relu": torch.relu, "none": lambda t: t}


class Block(nn.Module):
    """MobileNet's depthwise-separable block: depthwise conv, activation, 1x1 conv, (residual), activation."""

    def __init__(self, cin, cout, kernel=3, stride=1, act_dw="relu6", act_pw="hardswish", residual=False, bias=True):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, kernel, stride, kernel // 2, groups=cin, bias=bias)
        self.pw = nn.Conv2d(cin, cout, 1, bias=bias)
        self.act_dw, self.act_pw, self.residual = ACTS[act_dw], ACTS[act_pw], residual

    def forward(self, x):
        y = self.pw(self.act_dw(self.dw(x)))
        return self.act_pw(y + x if self.residual else y)


def placed_pair(model, x):
    """The block placed as the library's two calls (the runtime's depthwise loop, its small GEMM),
    the pair found in it, and the module with the pair as one call."""
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    pw = [o.name for o in offloads if o.kind == "conv2d"]
    placed = library.use_algorithms(placed, offloads, {n: "small_gemm" for n in pw})
    pairs = depthwise_pointwise.pairs(placed)
    assert [p.pointwise for p in pairs] == pw
    fused, fused_offloads = depthwise_pointwise.fuse(placed, offloads, pairs)
    assert [o.kind for o in fused_offloads] == ["depthwise_pointwise"]
    assert [o.func for o in fused_offloads] == [depthwise_pointwise.FUNC]
    return placed, pairs, fused


@pytest.mark.parametrize(
    "cin,cout,kernel,stride",
    [(16, 32, 3, 1), (32, 64, 3, 2), (24, 40, 3, 1), (72, 72, 5, 2), (4, 8, 3, 1), (120, 200, 3, 1)],
)
def test_geometries_and_channel_counts_match_pytorch(cin, cout, kernel, stride):
    """Channel counts that are not a multiple of the vector (24, 72, 120 in; 40, 200 out), 3x3 and
    5x5, stride 1 and 2: the fused call gives the two calls' (and PyTorch's) numbers."""
    torch.manual_seed(0)
    model, x = Block(cin, cout, kernel, stride), torch.randn(2, cin, 11, 9)
    _, _, fused = placed_pair(model, x)
    with torch.no_grad():
        torch.testing.assert_close(TvmRunner(builder.compile_placed(fused, INFO)).run([x])[0], model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act_dw,act_pw", [("relu6", "hardswish"), ("relu", "relu6"), ("none", "none"), ("hardswish", "relu")])
@pytest.mark.parametrize("residual", [False, True])
def test_epilogues_residual_nan_and_inf_match_pytorch(act_dw, act_pw, residual):
    """Both halves' bias and activation, and a residual added after the 1x1 convolution, with NaN
    and inf in the input coming out where eager PyTorch puts them."""
    torch.manual_seed(1)
    model, x = Block(32, 32, act_dw=act_dw, act_pw=act_pw, residual=residual, bias=act_dw != "none"), torch.randn(1, 32, 10, 10)
    x[0, 0, 3, 3], x[0, 7, 0, 9], x[0, 20, 6, 1] = float("nan"), float("inf"), float("-inf")
    _, _, fused = placed_pair(model, x)
    got = TvmRunner(builder.compile_placed(fused, INFO)).run([x])[0]
    with torch.no_grad():
        ref = model(x)
    assert got.isnan().any()
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    finite = torch.isfinite(ref)
    torch.testing.assert_close(got[finite], ref[finite], rtol=1e-4, atol=1e-5)


def test_offered_whatever_its_halves_run_and_only_where_the_1x1_alone_reads_the_depthwise():
    """The one call is a candidate against the two calls as placed, whichever kernels those are
    (the runtime's, oneDNN's, MKL's); a depthwise output that something else reads too is not
    offered (the fused call never writes it)."""

    class TwoReaders(Block):
        def forward(self, x):
            d = self.act_dw(self.dw(x))
            return self.act_pw(self.pw(d)) + d.mean()

    torch.manual_seed(2)
    x = torch.randn(1, 16, 8, 8)
    for model, offered in ((Block(16, 32), 1), (TwoReaders(16, 32), 0)):
        mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
        placed, offloads = builder.place(mod, INFO, "library")
        dw, pw = (next(o.name for o in offloads if o.kind == k) for k in ("depthwise_conv2d", "conv2d"))
        for algorithms in ({pw: "packed"}, {dw: "onednn", pw: "small_gemm"}, {}):
            assert len(depthwise_pointwise.pairs(library.use_algorithms(placed, offloads, algorithms))) == offered


def test_timed_against_the_two_calls_and_a_slowed_candidate_loses():
    """The pair is timed both ways on the model's weights; made slower on purpose
    (torchtvm.debug_delay_kernel), the fused call is not taken; with the separate depthwise
    call slowed instead, it is."""
    import tvm_ffi

    torch.manual_seed(3)
    model, x = Block(32, 64), torch.randn(2, 32, 16, 16)
    _, pairs, _ = placed_pair(model, x)
    delay = tvm_ffi.get_global_func("torchtvm.debug_delay_kernel")
    for slowed, taken in (("depthwise_pointwise", False), ("depthwise", True)):
        try:
            delay(slowed, 20000)  # 20 ms: far past what a busy 2-core machine adds
            timed = measure.time_depthwise_pointwise(pairs, INFO, rounds=1, calls=3)
        finally:
            delay(slowed, 0)
        t = timed[pairs[0].pointwise]
        assert (t["fused"] if slowed == "depthwise_pointwise" else t["two"]) >= 20.0
        assert (depthwise_pointwise.faster(pairs, timed, measure.MARGIN) == pairs) is taken


def test_a_built_mobile_net_reports_each_pair_as_one_row_or_two():
    """Through the whole pipeline: whichever way the timing went here, the report lists each
    depthwise convolution once (in a pair's row, named after the block holding both convolutions,
    or its own), every library row has its time from the profiled run, and the export matches
    PyTorch."""
    from torchtvm.common.options import CompileOptions
    from torchtvm.common.progress import JobContext
    from torchtvm.pipeline.compile import compile_run

    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6(), Block(16, 32), Block(32, 32, residual=True), Block(32, 48, stride=2)).eval()
    x = torch.randn(1, 3, 32, 32)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/m.pt"
        torch.jit.trace(model, x).save(path)
        params = {"model": path, "inputs": [{"name": "x", "dims": [1, 3, 32, 32], "dtype": "float32"}], "threads": 2, "out_dir": f"{tmp}/out", "measure": False}
        run = compile_run(CompileOptions.from_params(params, tune=False), JobContext("local", None))
        ops = run.result["placement"]["ops"]
        pairs = [o for o in ops if o["kind"] == "depthwise_pointwise"]
        alone = [o for o in ops if o["kind"] == "depthwise_conv2d"]
        assert len(pairs) + len(alone) == 3 and all(o["where"] == "library" for o in pairs + alone)
        assert all(o["ms"] is not None for o in ops if o["where"] == "library")
        for o in pairs:
            assert o["epilogue"][:2] == ["bias", "relu6"] and "1x1 conv" in o["epilogue"]
            assert o["scope"] in ("2", "3", "4")  # the Block holding both convolutions
            assert o["alone_ms"]["library"] < o["alone_ms"]["separate"]
        with torch.no_grad():
            torch.testing.assert_close(run.built.run([x])[0], model(x), rtol=1e-4, atol=1e-5)
