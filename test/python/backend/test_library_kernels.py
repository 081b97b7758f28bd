"""Library kernels inside the compiled graph: conv2d / linear / matmul chains run PyTorch's oneDNN and
MKL kernels through R.call_dps_packed (native/runtime/src/library_kernels.cc), placed by
torchtvm.backend; every pattern must match PyTorch, and the exported model must load and run in a
fresh process."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from _export_helpers import compile_and_export, run_fresh
from torchtvm.backend import build as builder
from torchtvm.backend import library
from torchtvm.backend.executor import TvmRunner
from torchtvm.deploy.export import make_metadata, make_runtime_object
from torchtvm.frontend.importer import import_program

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)


def build(model: nn.Module, example: tuple, placement: str = "library", dynamic_shapes=None, tmp_path=None, info=INFO):
    """torch.export -> Relax -> build with `placement` for `info` (this CPU by default); returns (runner, offloads)."""
    ep = torch.export.export(model.eval(), example, dynamic_shapes=dynamic_shapes)
    with torch.no_grad():
        num_outputs = len(model(*example)) if isinstance(model(*example), (tuple, list)) else 1
    mod = import_program(ep, list(example), num_outputs).mod  # the engine's own import path
    executable, offloads = builder.build_placed(mod, info, None, placement)
    if tmp_path is not None:  # run the exported library, as the runtime op does
        return TvmRunner.from_library(builder.export_library(executable, str(tmp_path / "m.so"))), offloads
    return TvmRunner(executable), offloads


def check(model, *inputs, placement="library", **kw):
    runner, offloads = build(model, inputs, placement, **kw)
    with torch.no_grad():
        ref = model(*inputs)
    got = runner.run(list(inputs))
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype and g.shape == r.shape
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
    return offloads


class ConvAct(nn.Module):
    def __init__(self, act, cin=4, cout=8, residual=False, **conv):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, **{"padding": 1, **conv})
        self.act = act
        self.residual = residual

    def forward(self, x):
        y = self.conv(x)
        if self.residual:
            y = y + x
        return self.act(y)


ACTIVATIONS = {
    "relu": (torch.relu, "relu"),
    "relu6": (F.relu6, "relu6"),
    "sigmoid": (torch.sigmoid, "sigmoid"),
    "tanh": (torch.tanh, "tanh"),
    "gelu": (F.gelu, "gelu"),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), "gelu_tanh"),
    "silu": (F.silu, "silu"),
    "hardswish": (F.hardswish, "hardswish"),
    "none": (lambda t: t, None),
}


def test_the_runtimes_parallel_loops_use_torchs_threads():
    """The runtime's kernels (Winograd, depthwise, max pooling) and TVM's loops run on torch's pool
    through at::parallel_for, which compiles to a serial loop unless the runtime is built with OpenMP."""
    import tvm_ffi

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert tvm_ffi.get_global_func("torchtvm.library_parallel_threads")() == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture(params=["direct", "in_place"])
def conv_path(request):
    """Both ways a library conv writes TVM's buffer: torch's prepacked op context runs straight into
    it (convs without a residual), or oneDNN's in-place sum form accumulates onto zeros."""
    import tvm_ffi

    toggle = tvm_ffi.get_global_func("torchtvm.library_direct_conv")
    before = toggle(request.param == "direct")
    yield request.param
    toggle(before)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("residual", [False, True])
def test_conv_epilogues_match_pytorch(act, residual, conv_path):
    fn, name = ACTIVATIONS[act]
    torch.manual_seed(0)
    model = ConvAct(fn, cin=8, cout=8, residual=residual)
    offloads = check(model, torch.randn(2, 8, 9, 9))
    assert [o.kind for o in offloads] == ["conv2d"]
    epilogue = offloads[0].epilogue
    assert ("add" in epilogue) == residual
    assert (name in epilogue) if name else len(epilogue) == 1 + residual  # just the bias (and add)


@pytest.mark.parametrize(
    "conv",
    [{"residual": False, "act": "relu"}, {"residual": True, "act": "relu"}, {"residual": True, "act": "none"}, {"stride": 2, "padding": 0, "act": "hardswish"}, {"groups": 2, "dilation": 2, "padding": 2}, {"bias": False, "cin": 3}, {"cin": 3, "stride": 2, "act": "relu6"}, {"cin": 3, "dilation": 2, "padding": 1, "act": "gelu"}],
)
@pytest.mark.parametrize("algorithm", ["torch", "direct"])
def test_conv_algorithms_match_pytorch(conv, algorithm):
    """Algorithm `torch` of a library conv (ATen's own convolution, out of place, then into TVM's
    buffer with the residual and the activation): what placement picks for small convolutions,
    where oneDNN's prepacked form costs more per call than the convolution. Algorithm `direct`
    (the runtime's direct loop, output channels as vectors, the epilogue in registers; a grouped
    convolution falls back to the default): what it picks for an image net's stem."""
    conv = dict(conv)
    fn, _ = ACTIVATIONS[conv.pop("act", "relu")]
    cin = conv.pop("cin", 8)
    torch.manual_seed(2)
    model = ConvAct(fn, cin=cin, cout=8, residual=conv.pop("residual", False), **conv).eval()
    x = torch.randn(2, cin, 9, 9)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    ex = builder.compile_placed(library.use_algorithms(placed, offloads, {offloads[0].name: algorithm}), INFO)
    assert offloads[0].algorithm == algorithm
    with torch.no_grad():
        ref = model(x)
    torch.testing.assert_close(TvmRunner(ex).run([x])[0], ref, rtol=1e-4, atol=1e-4)
    x[0, 1, 4, 4] = float("nan")  # it reaches the same outputs whatever the algorithm
    with torch.no_grad():
        ref = model(x)
    torch.testing.assert_close(TvmRunner(ex).run([x])[0], ref, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_every_float_convolution_is_timed_as_atens_own_too():
    """Nothing unmeasured: placement times each float32 convolution as ATen's own convolution
    beside the runtime's default (and its other algorithms), and keeps whichever is faster."""
    from torchtvm.backend import measure

    torch.manual_seed(3)
    model = ConvAct(torch.relu, cin=3, cout=8).eval()
    x = torch.randn(1, 3, 8, 8)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "auto")
    timed = measure.time_library_calls(placed, offloads, rounds=2, calls=3)[offloads[0].name]
    assert timed.others_ms["torch"] > 0 and timed.others_ms["direct"] > 0 and timed.library_ms > 0
    fastest = min(timed.others_ms, key=lambda k: timed.others_ms[k])
    assert timed.algorithm == (fastest if timed.others_ms[fastest] < timed.library_ms * measure.MARGIN else "")


@pytest.mark.parametrize(
    "conv,kind",
    [
        ({"stride": 2, "padding": 0}, "conv2d"),
        ({"padding": 2, "dilation": 2}, "conv2d"),
        ({"groups": 2}, "grouped_conv2d"),
        ({"groups": 8, "stride": 2}, "depthwise_conv2d"),
        ({"bias": False}, "conv2d"),
        ({"cin": 1}, "conv2d"),  # one input channel: NCHW and NHWC are the same bytes
    ],
)
def test_conv_shapes_match_pytorch(conv, kind, conv_path):
    torch.manual_seed(1)
    conv = dict(conv)  # the parameter is shared by both conv paths
    cin = conv.pop("cin", 8)
    model = ConvAct(torch.relu, cin=cin, cout=8, **conv)
    offloads = check(model, torch.randn(1, cin, 11, 13))
    assert [o.kind for o in offloads] == [kind]


class Pointwise(nn.Module):
    def __init__(self, cin, cout, bias, residual):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=bias)
        self.residual = residual

    def forward(self, x, r):
        y = self.conv(x)
        return torch.relu(y + r if self.residual else y)


# A small 1x1 conv runs as an MKL GEMM into TVM's buffer; a large one (over 2^24 multiply-adds)
# stays with oneDNN.
@pytest.mark.parametrize("shape", [(2, 16, 8, 8, 32), (1, 256, 28, 28, 512)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("residual", [False, True])
def test_pointwise_convs_match_pytorch(shape, bias, residual, conv_path):
    n, cin, h, w, cout = shape
    torch.manual_seed(2)
    offloads = check(Pointwise(cin, cout, bias, residual), torch.randn(n, cin, h, w), torch.randn(n, cout, h, w))
    assert [o.kind for o in offloads] == ["conv2d"] and ("add" in offloads[0].epilogue) == residual


def test_batchnorm_and_unfolded_affine_fold_into_the_conv():
    torch.manual_seed(2)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.b = nn.Conv2d(8, 8, 1)  # conv with bias, then BatchNorm: not folded by TVM's pass
            self.bn2 = nn.BatchNorm2d(8)

        def forward(self, x):
            return self.bn2(self.b(torch.relu(self.bn1(self.a(x)))))

    m = M().eval()
    with torch.no_grad():
        for bn in (m.bn1, m.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 2)
    offloads = check(m, torch.randn(2, 3, 8, 8))
    assert len(offloads) == 2 and offloads[0].epilogue[-1] == "relu"


def test_linear_and_matmul_match_pytorch():
    torch.manual_seed(3)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(16, 16)
            self.k = nn.Linear(16, 16, bias=False)
            self.o = nn.Linear(16, 16)

        def forward(self, x):
            att = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), -1)
            return F.gelu(self.o(att @ x)) + x

    offloads = check(M(), torch.randn(2, 5, 16))
    kinds = sorted(o.kind for o in offloads)
    # matmul, softmax, matmul is attention: one call (test_library_attention.py; without it, two matmuls)
    assert kinds == ["attention", "linear", "linear", "linear"]


def test_symbolic_batch_runs_one_module_at_the_range_ends(tmp_path):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)).eval()
    batch = torch.export.Dim("batch", min=1, max=16)
    runner, offloads = build(model, (torch.randn(2, 3, 6, 6),), dynamic_shapes=({0: batch},), tmp_path=tmp_path)
    assert len(offloads) == 3
    for n in (1, 7, 16):
        x = torch.randn(n, 3, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-4, atol=1e-4)


def test_tvm_placement_offloads_nothing_and_agrees():
    torch.manual_seed(5)
    model = ConvAct(torch.relu, residual=True, cin=8)
    x = torch.randn(1, 8, 6, 6)
    assert check(model, x, placement="tvm") == []
    assert len(check(model, x, placement="auto")) == 1


def test_default_compile_calls_library_kernels_and_reports_placement(tmp_path):
    result = compile_and_export("conv_library", str(tmp_path))
    assert result["verification"]["ok"]
    placement = result["placement"]
    assert placement["mode"] == "auto" and placement["library_ops"] == 4
    assert [o["kind"] for o in placement["ops"]] == ["conv2d", "conv2d", "depthwise_conv2d", "linear"]
    assert all(o["where"] == "library" and o["ms"] > 0 for o in placement["ops"])
    # The export records the torch ops it calls, with their schemas, for the load-time check.
    meta = json.loads(torch.jit.load(result["files"]["exported"]).torchtvm_module.metadata())
    lib = meta["library_kernels"]
    assert lib["torch"] == torch.__version__ and "mkldnn::_convolution_pointwise_.binary" in lib["ops"]


def test_exported_library_model_runs_in_a_fresh_process(tmp_path):
    result = compile_and_export("conv_library", str(tmp_path))
    pt = result["files"]["exported"]
    proc = run_fresh(f"""
        import torch, torchtvm
        torch.manual_seed(0)
        m = torch.jit.load({pt!r})
        for n in (1, 8):
            x = torch.randn(n, 3, 8, 8)
            y = m(x)
            assert y.shape == (n, 5), y.shape
            assert torch.isfinite(y).all()
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


@pytest.mark.parametrize("other", ["2.99.0", "build"])
def test_load_refuses_library_ops_of_another_torch(other):
    lib = b"not loaded: the check comes first"
    spec = [{"name": "x", "dims": [1, 4], "dtype": "float32"}]
    release = torch.__version__.split("+")[0]
    # another release, or the same release built otherwise (a local tag: +cu132)
    recorded = "2.99.0" if other == "2.99.0" else f"{release}+other"
    meta = make_metadata(lib, INFO, spec, 1, {"library_kernels": {"torch": recorded, "functions": ["torchtvm.conv2d"], "ops": {"mkldnn::_convolution_pointwise": "mkldnn::_convolution_pointwise(Tensor X) -> Tensor Y"}}})
    with pytest.raises(RuntimeError) as e:
        make_runtime_object(lib, meta)
    msg = str(e.value)
    assert f"as torch {recorded} defines it" in msg and "Re-export" in msg
    if other == "build":
        assert f"this process runs another build of torch {release}" in msg
    else:
        assert f"this process runs torch {release}," in msg


def test_half_precision_goes_to_the_library_only_with_cpu_support():
    torch.manual_seed(6)
    has_bf16 = any(f in INFO.features for f in ("avx512bf16", "amx-bf16"))
    model = ConvAct(torch.relu, cin=8).to(torch.bfloat16)
    x = torch.randn(1, 8, 6, 6, dtype=torch.bfloat16)
    runner, offloads = build(model, (x,), "auto")
    assert len(offloads) == (1 if has_bf16 else 0)
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0].float(), model(x).float(), rtol=2e-2, atol=2e-2)
    # float16 needs avx512fp16 / AMX-FP16 in oneDNN; elsewhere TVM keeps it
    has_fp16 = any(f in INFO.features for f in ("avx512fp16", "amx-fp16"))
    assert len(build(ConvAct(torch.relu, cin=8).half(), (x.half(),), "auto")[1]) == (1 if has_fp16 else 0)


def test_transformer_linears_and_attention_matmuls_go_to_the_library():
    torch.manual_seed(7)
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
    offloads = check(layer, torch.randn(2, 6, 32))
    kinds = [o.kind for o in offloads]
    assert kinds.count("linear") == 4 and kinds.count("attention") == 1
    assert ["bias", "relu"] in [o.epilogue for o in offloads]  # through the [M, N] <-> [B, T, N] reshapes


@pytest.mark.parametrize("act", ["relu", "relu6", "sigmoid", "silu", "none"])
@pytest.mark.parametrize("residual", [False, True])
def test_nan_and_inf_propagate_through_library_epilogues_as_in_pytorch(act, residual, conv_path):
    torch.manual_seed(8)
    model = ConvAct(ACTIVATIONS[act][0], cin=8, cout=8, residual=residual)
    x = torch.randn(1, 8, 7, 7)
    x[0, 0, 3, 3], x[0, 1, 5, 1], x[0, 2, 0, 0] = float("nan"), float("inf"), float("-inf")
    runner, offloads = build(model, (x,))
    assert len(offloads) == 1
    got = runner.run([x])[0]
    with torch.no_grad():
        ref = model(x)
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    assert torch.equal(torch.isinf(got), torch.isinf(ref)) and torch.equal(got[torch.isinf(got)], ref[torch.isinf(ref)])
    finite = torch.isfinite(ref)
    torch.testing.assert_close(got[finite], ref[finite], rtol=1e-4, atol=1e-4)


class DownsampleBlock(nn.Module):
    """ResNet's downsampling block: the residual add waits for the shortcut's conv, so the main
    path's second conv runs after the shortcut though it comes first in the graph."""

    def __init__(self, c=32):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 5, padding=2)
        self.short = nn.Conv2d(c, 2 * c, 1, stride=2)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.short(x))


def test_placement_times_each_op_in_the_order_its_call_runs(tmp_path):
    from torchtvm.backend import placement

    torch.manual_seed(6)
    x = torch.randn(1, 32, 32, 32)
    runner, offloads = build(DownsampleBlock(), (x,), tmp_path=tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: OpenMP barriers on a busy machine would swamp the times
    try:
        prof = placement.profile_library(lambda: runner.run([x]), repeat=5)
    finally:
        torch.set_num_threads(threads)
    rep = placement.report("library", offloads, [], prof, prof.run_ms)
    by_epilogue = {tuple(o["epilogue"]): o for o in rep["ops"]}
    main, short = by_epilogue[("bias", "add", "relu")], by_epilogue[("bias",)]
    # The 5x5 conv does ~50x the shortcut's work (the shortcut's time is mostly call overhead, so
    # the measured ratio is nearer 5x): swapped timings would show the opposite.
    assert main["ms"] > 2 * short["ms"], rep["ops"]


def test_per_op_placement_times_both_candidates_and_a_mixed_build_agrees(tmp_path):
    from torchtvm.backend import measure

    torch.manual_seed(7)
    model, x = DownsampleBlock(8).eval(), torch.randn(1, 8, 12, 12)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    dtypes = library.library_dtypes(INFO.features)
    timed = measure.measure_ops(builder.prepare(mod, INFO), INFO, None, dtypes, rounds=1, calls=3)
    assert len(timed) == 3 and all(t.library_ms > 0 and t.tvm_ms > 0 for t in timed.values())
    # Keep the shortcut conv in TVM: the other two stay library calls, and the model still agrees.
    short = next(o.name for o in library.candidates(mod) if o.epilogue == ["bias"])
    executable, offloads = builder.build_placed(mod, INFO, None, "library", keep_in_tvm={short})
    assert sorted(o.epilogue for o in offloads) == [["bias", "add", "relu"], ["bias", "relu"]]
    with torch.no_grad():
        torch.testing.assert_close(TvmRunner(executable).run([x])[0], model(x), rtol=1e-4, atol=1e-4)


class ConvPool(nn.Module):
    def __init__(self, conv: bool, **pool):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1) if conv else None
        self.pool = nn.MaxPool2d(**pool)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x)) if self.conv is not None else x)


@pytest.mark.parametrize("conv", [True, False])  # NHWC after a library conv; NCHW alone
@pytest.mark.parametrize("pool", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, stride=2, ceil_mode=True), dict(kernel_size=3, stride=1, dilation=2)])
def test_max_pool_runs_pytorchs_kernel_and_keeps_nan(conv, pool):
    torch.manual_seed(8)
    model, x = ConvPool(conv, **pool), torch.randn(2, 4, 11, 11)
    offloads = check(model, x)
    assert "max_pool2d" in [o.kind for o in offloads]
    if not conv:  # NaN wins a window, as in PyTorch
        x[0, 1, 3, 3] = float("nan")
        runner, _ = build(model, (x,))
        got, ref = runner.run([x])[0], model(x)
        assert torch.equal(got.isnan(), ref.isnan()) and got.isnan().any()


class LinearAct(nn.Module):
    def __init__(self, k: int, n: int, bias: bool, residual: bool, act):
        super().__init__()
        self.fc, self.residual, self.act = nn.Linear(k, n, bias=bias), residual, act

    def forward(self, x, r):
        y = self.fc(x)
        return self.act(y + r if self.residual else y)


def build_packed(model, inputs, algorithm="packed"):
    """Build with every linear and 1x1 convolution given `algorithm` (MKL's packed GEMM, or the
    runtime's own small_gemm)."""
    mod = import_program(torch.export.export(model.eval(), inputs), list(inputs), 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    choices = {o.name: algorithm for o in offloads if o.kind in ("linear", "conv2d")}
    return TvmRunner(builder.compile_placed(library.use_algorithms(placed, offloads, choices), INFO)), offloads


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("act", ["none", "relu", "gelu"])
def test_mkl_packed_gemm_matches_pytorch_with_nan_and_inf(bias, residual, act):
    """Algorithm "packed" (a linear's or a 1x1 convolution's weight packed once for MKL's
    sgemm_compute, writing into TVM's buffer): the same numbers as PyTorch, non-finite values too."""
    import tvm_ffi

    if not tvm_ffi.get_global_func("torchtvm.library_has_packed_gemm")():
        pytest.skip("this torch exports no MKL packed GEMM: the algorithm falls back to the plain GEMM")
    torch.manual_seed(5)
    model = LinearAct(48, 40, bias, residual, ACTIVATIONS[act][0])
    x, r = torch.randn(3, 7, 48), torch.randn(3, 7, 40)
    x[0, 0, 3], x[1, 2, 5], r[2, 6, 1] = float("nan"), float("inf"), float("-inf")
    runner, offloads = build_packed(model, (x, r))
    assert [o.algorithm for o in offloads] == ["packed"]
    with torch.no_grad():
        ref = model(x, r)
    for _ in range(2):  # the second call reuses the packed weight
        torch.testing.assert_close(runner.run([x, r])[0], ref, rtol=1e-4, atol=1e-4, equal_nan=True)

    conv = Pointwise(24, 40, bias, residual).eval()
    xc, rc = torch.randn(2, 24, 5, 6), torch.randn(2, 40, 5, 6)
    xc[1, 3, 2, 2] = float("nan")
    runner, offloads = build_packed(conv, (xc, rc))
    assert [o.algorithm for o in offloads] == ["packed"]
    with torch.no_grad():
        torch.testing.assert_close(runner.run([xc, rc])[0], conv(xc, rc), rtol=1e-4, atol=1e-4, equal_nan=True)


class PointwiseAct(nn.Module):
    def __init__(self, cin, cout, bias, residual, act):
        super().__init__()
        self.conv, self.residual, self.act = nn.Conv2d(cin, cout, 1, bias=bias), residual, act

    def forward(self, x, r):
        y = self.conv(x)
        return self.act(y + r if self.residual else y)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("act", ["none", "relu", "relu6", "hardswish", "gelu"])
def test_runtime_small_gemm_matches_pytorch_with_nan_and_inf(bias, residual, act):
    """Algorithm "small_gemm" (a linear or 1x1 convolution by the runtime's own register-blocked
    GEMM, split over threads by blocks of 6 rows x 64 columns, bias / residual / relu / relu6 /
    hardswish applied in registers before each block is stored, any other activation after): the same numbers as PyTorch,
    non-finite values too, for row and column counts that leave partial blocks (21 rows, 40 and
    72 columns). Runs under each ISA cap in npm test (the kernels-avx2 job)."""
    torch.manual_seed(7)
    model = LinearAct(48, 40, bias, residual, ACTIVATIONS[act][0])
    x, r = torch.randn(3, 7, 48), torch.randn(3, 7, 40)
    x[0, 0, 3], x[1, 2, 5], r[2, 6, 1] = float("nan"), float("inf"), float("-inf")
    runner, offloads = build_packed(model, (x, r), "small_gemm")
    assert [o.algorithm for o in offloads] == ["small_gemm"]
    with torch.no_grad():
        ref = model(x, r)
    for _ in range(2):  # the second call reuses the packed weight
        torch.testing.assert_close(runner.run([x, r])[0], ref, rtol=1e-4, atol=1e-4, equal_nan=True)

    conv = PointwiseAct(24, 72, bias, residual, ACTIVATIONS[act][0]).eval()
    xc, rc = torch.randn(2, 24, 5, 6), torch.randn(2, 72, 5, 6)
    xc[1, 3, 2, 2], rc[0, 70, 4, 5] = float("nan"), float("inf")
    runner, offloads = build_packed(conv, (xc, rc), "small_gemm")
    assert [o.algorithm for o in offloads] == ["small_gemm"]
    with torch.no_grad():
        torch.testing.assert_close(runner.run([xc, rc])[0], conv(xc, rc), rtol=1e-4, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("rows", [1, 2, 3])
@pytest.mark.parametrize("k,n", [(47, 72), (64, 40)])
def test_small_gemm_with_few_rows_matches_pytorch(rows, k, n):
    """A product of 1-3 rows (a batch-1 classifier, an RNN step) takes SmallGemm's few-row path
    where the ISA has few registers per row (AVX2: even and odd k accumulated apart): odd inner
    sizes and partial column strips give PyTorch's numbers."""
    torch.manual_seed(8)
    model = LinearAct(k, n, True, False, torch.relu)
    x, r = torch.randn(rows, k), torch.randn(rows, n)
    x[0, k // 2] = float("nan")
    runner, offloads = build_packed(model, (x, r), "small_gemm")
    assert [o.algorithm for o in offloads] == ["small_gemm"]
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x, r])[0], model(x, r), rtol=1e-4, atol=1e-4, equal_nan=True)


def test_placement_times_the_packed_gemm_for_linears_and_pointwise_convs():
    """Every linear and 1x1 convolution with a constant weight has the packed GEMM as a timed
    candidate; it replaces the default only when clearly faster."""
    from torchtvm.backend import measure

    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.Flatten(), nn.Linear(32 * 36, 10)).eval()
    x = torch.randn(1, 16, 6, 6)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "auto")
    timed = measure.time_library_calls(placed, offloads, rounds=2, calls=5)
    assert [o.kind for o in offloads] == ["conv2d", "conv2d", "linear"]
    assert "packed" not in timed[offloads[1].name].others_ms  # a 3x3 convolution is no GEMM
    for o in (offloads[0], offloads[2]):
        t = timed[o.name]
        assert set(t.others_ms) >= {"packed", "small_gemm"}, o.kind
        assert (t.algorithm == "packed") == (min(t.others_ms.values()) == t.others_ms["packed"] and t.others_ms["packed"] < t.library_ms * measure.MARGIN)


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad,dil,residual,act",
    [
        (3, 16, 3, 2, 1, 1, False, "hardswish"),  # MobileNetV3's stem
        (3, 8, 3, 1, 1, 1, False, "relu6"),  # a 3x3 stem at stride 1 (its taps unrolled too)
        (3, 16, 3, 1, 1, 1, True, "relu"),  # the same in two vectors on AVX2, with a residual
        (3, 64, 7, 2, 3, 1, False, "relu"),  # ResNet's
        (1, 20, 5, 1, 2, 1, True, "relu6"),  # output channels not a whole vector, residual
        (4, 72, 3, 1, 0, 2, False, "none"),  # two channel blocks on AVX-512, dilated
        (2, 5, 1, 3, 0, 1, True, "gelu"),  # an epilogue applied after the loop
        (1, 8, 9, 1, 4, 1, False, "relu"),  # 4 border pixels a side
        (3, 16, 3, 3, 1, 1, True, "none"),  # 7 pixels a row, fewer than a group of 8
    ],
)
@pytest.mark.parametrize("source", ["input", "activation"])
def test_direct_convolution_matches_pytorch(cin, cout, k, stride, pad, dil, residual, act, source):
    """The runtime's direct loop (algorithm `direct`) on the shapes it is chosen for: every border
    pixel, the interior's remainder (one overlapping group; 4, 2 and 1 at a time where the residual
    is the output itself), partial vectors of output channels, several channel blocks, a residual,
    NaN and inf as eager; reading the model's NCHW input where it lies (the transpose to NHWC goes)
    and an NHWC activation (a 1x1 convolution's output)."""
    fn, _ = ACTIVATIONS[act]

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Conv2d(cin, cin, 1) if source == "activation" else nn.Identity()
            self.conv = nn.Conv2d(cin, cout, k, stride, pad, dil)

        def forward(self, x, r):
            y = self.conv(self.pre(x))
            return fn(y + r if residual else y)

    torch.manual_seed(5)
    model, x = Conv().eval(), torch.randn(2, cin, 23, 19)
    with torch.no_grad():
        r = torch.randn_like(model.conv(x))
    mod = import_program(torch.export.export(model, (x, r)), [x, r], 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    conv = offloads[-1]
    assert (act in conv.epilogue or act == "none") and ("add" in conv.epilogue) == residual
    placed = library.use_algorithms(placed, offloads, {conv.name: "direct"})
    # The call reads the NCHW input itself (no transpose before it; with one channel the graph has
    # a reshape, no transpose, there), or the 1x1 convolution's NHWC output.
    reads_input = '"torchtvm.conv2d", (x,' in placed["main"].script()
    assert reads_input == (source == "input" and cin > 1)
    runner = TvmRunner(builder.compile_placed(placed, INFO))
    x[1, 0, 5, 6], x[0, -1, 0, 0] = float("nan"), float("inf")
    with torch.no_grad():
        ref = model(x, r)
    got = runner.run([x, r])[0]
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    fin = torch.isfinite(ref)
    torch.testing.assert_close(got[fin], ref[fin], rtol=1e-4, atol=1e-4)
