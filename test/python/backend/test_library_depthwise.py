"""Depthwise convolutions with 4 or more channels run the runtime's own NHWC loop
(native/runtime/src/library_depthwise.cc) instead of oneDNN's: it must match PyTorch for every
geometry, epilogue and residual, keep NaN and inf as eager does, and take a symbolic batch."""

from __future__ import annotations

import os

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
@pytest.mark.parametrize("size", [(9, 11), (8, 8), (6, 16)])  # windows of 4; one group a row; two (AVX2)
def test_epilogues_match_pytorch(act, residual, size):
    torch.manual_seed(0)
    model, x = Depthwise(32, ACTS[act], residual), torch.randn(2, 32, *size)
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


@pytest.mark.parametrize("act", ["relu6", "hardswish", "none"])
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


@pytest.mark.parametrize("channels,kernel", [(4, 3), (8, 3), (12, 3), (24, 3), (72, 3), (120, 5)])
@pytest.mark.parametrize("residual", [False, True])
def test_any_channel_count_matches_pytorch(channels, kernel, residual):
    """Any channel count from 4 runs the same loop, in vectors of the ISA's width or narrower
    (16 / 8 / 4 floats): when the count is not a multiple of it (mobile nets' 72, 120, 200), the
    last block overlaps the one before it."""
    torch.manual_seed(3)
    model, x = Depthwise(channels, F.relu6, residual, kernel_size=kernel, padding=kernel // 2), torch.randn(2, channels, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(run(model, x).run([x])[0], model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("width", [4, 5, 7, 8, 11, 14, 16, 23, 28, 32])
@pytest.mark.parametrize("kernel,act", [(3, "hardswish"), (3, "relu"), (5, "hardswish")])
def test_rows_of_every_width_match_pytorch(stride, width, kernel, act):
    """A 3x3 or 5x5 row runs its inner columns 4 at a time from a sliding window, then the
    leftover columns one by one, and the border columns (which read padding) by the generic path;
    a row of a multiple of 7 or 8 output columns with "same" padding (14 or 16 on AVX-512) in
    groups of that many (taps outermost on AVX-512, sliding along the row on AVX2), the taps that
    fall on the padding left out: every split of a row between them agrees with PyTorch."""
    torch.manual_seed(5)
    model, x = Depthwise(40, ACTS[act], stride=stride, kernel_size=kernel, padding=kernel // 2), torch.randn(1, 40, 6, width)
    with torch.no_grad():
        torch.testing.assert_close(run(model, x).run([x])[0], model(x), rtol=1e-5, atol=1e-5)


def test_each_algorithm_matches_pytorch_and_a_slowed_own_kernel_loses_its_place(tmp_path, monkeypatch):
    """Placement times the runtime's depthwise loop against oneDNN's convolution on the model's
    shapes. Both agree with PyTorch; made slower on purpose (torchtvm.debug_delay_kernel), the
    runtime's loop loses the op to oneDNN's or ATen's convolution; the times are cached by the call's signature and the
    machine, reused by the next build and not by a build with other threads or another ISA cap."""
    import tvm_ffi

    from torchtvm.backend import kernel_choices, measure

    torch.manual_seed(4)
    model, x = Depthwise(32, F.relu6), torch.randn(1, 32, 12, 12)
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    with torch.no_grad():
        ref = model(x)
    for algorithm in ("", "onednn"):
        placed, offloads = builder.place(mod, INFO, "library")
        ex = builder.compile_placed(library.use_algorithms(placed, offloads, {offloads[0].name: algorithm}), INFO)
        torch.testing.assert_close(TvmRunner(ex).run([x])[0], ref, rtol=1e-5, atol=1e-5)
        assert offloads[0].algorithm == algorithm

    delay = tvm_ffi.get_global_func("torchtvm.debug_delay_kernel")
    cache = kernel_choices.TimingCache(str(tmp_path / "timings.json"))
    placed, offloads = builder.place(mod, INFO, "auto")
    try:
        # 20 ms: far past the few ms a descheduled thread can add on a busy 2-core machine
        delay("depthwise", 20000)
        slowed = measure.time_library_calls(placed, offloads, rounds=1, calls=3, cache=cache)[offloads[0].name]
    finally:
        delay("depthwise", 0)
    # A convolution that is not the runtime's loop takes the op: oneDNN's, or ATen's own (whichever
    # timed faster; one of them alone may catch a scheduler stall of a busy machine).
    assert slowed.library_ms >= 20.0 and set(slowed.others_ms) == {"onednn", "torch"} and min(slowed.others_ms.values()) < 20.0
    assert slowed.algorithm == min(slowed.others_ms, key=lambda k: slowed.others_ms[k])
    cache.save()
    # Reused: the next build reads the slowed times instead of timing the (now fast) loop again.
    again = measure.time_library_calls(placed, offloads, rounds=1, calls=3, cache=kernel_choices.TimingCache(cache.path))
    assert again[offloads[0].name].library_ms == slowed.library_ms
    # Not reused with other threads, nor under another ISA cap: the call is timed again.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        retimed = measure.time_library_calls(placed, offloads, rounds=1, calls=3, cache=kernel_choices.TimingCache(cache.path))
    finally:
        torch.set_num_threads(threads)
    assert retimed[offloads[0].name].library_ms < 20.0
    machine = kernel_choices.machine()
    monkeypatch.setenv("TORCHTVM_MAX_CPU_ISA", "avx512" if os.environ.get("TORCHTVM_MAX_CPU_ISA") == "avx2" else "avx2")
    assert kernel_choices.machine() != machine


def test_a_call_far_slower_in_the_model_than_alone_is_timed_there_with_its_runner_up():
    """placement.check_in_context: the runtime's depthwise loop, chosen by its time alone, is made
    slower on purpose inside the model only (torchtvm.debug_delay_kernel after the alone timing, as
    weights that no longer fit in cache would); the build's call is then timed in model runs with
    the algorithm next fastest alone too, runs that one, and still agrees with PyTorch."""
    from dataclasses import replace

    from _timing_helpers import slowed
    from torchtvm.backend import measure, placement
    from torchtvm.common.progress import JobContext
    from torchtvm.common.specs import InputSpec

    torch.manual_seed(6)
    model, x = Depthwise(32, F.relu6), torch.randn(1, 32, 12, 12)
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    with torch.no_grad():
        ref = model(x)
    placed, offloads = builder.place(mod, INFO, "auto")
    (name,) = [o.name for o in offloads]
    real = measure.time_library_calls(placed, offloads, rounds=2, calls=3)[name]
    # The loop is taken as the fastest alone (the premise of the check), whatever this CPU timed.
    timed = {name: measure.OpTiming(name, min(real.library_ms, 0.5 * min(real.others_ms.values())), None, others_ms=dict(real.others_ms))}
    assert timed[name].algorithm == ""
    runner_up = min(real.others_ms, key=lambda k: real.others_ms[k])

    def rebuild(algorithms):
        offs = [replace(o) for o in offloads]
        return builder.compile_placed(library.use_algorithms(placed, offs, algorithms), INFO), offs

    default_ex, default_offloads = rebuild({})
    with slowed("depthwise", 20000):
        ex, offs, note = placement.check_in_context(default_ex, default_offloads, timed, rebuild, INFO, [InputSpec("x", tuple(x.shape))], JobContext())
    assert timed[name].algorithm == runner_up and set(timed[name].context_ms) == {"library", runner_up}, (timed[name], note)
    assert timed[name].context_ms["library"] >= 20.0 > timed[name].context_ms[runner_up]
    assert offs[0].algorithm == runner_up and "1 switched" in note
    torch.testing.assert_close(TvmRunner(ex).run([x])[0], ref, rtol=1e-5, atol=1e-5)

    # A check that fails (here the second build) leaves the build as the alone times made it.
    def failing(algorithms):
        raise RuntimeError("no second build")

    timed[name].context_ms = {}
    logged = []
    ctx = JobContext(sink=lambda event, data: logged.append(data))
    with slowed("depthwise", 20000):
        ex, offs, note = placement.check_in_context(default_ex, default_offloads, timed, failing, INFO, [InputSpec("x", tuple(x.shape))], ctx)
    assert ex is default_ex and offs is default_offloads and note == "" and timed[name].context_ms == {} and timed[name].algorithm == ""
    assert any("no second build" in str(d) for d in logged), logged
