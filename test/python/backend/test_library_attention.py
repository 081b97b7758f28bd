"""Whole ops in the library (backend/library_attention.py, native/runtime/src/library_attention.cc):
attention (torch's flash attention for CPU on strided views of q, k, v), layer_norm and softmax
agree with PyTorch, NaN included, with symbolic batch / sequence dims; an exported model records
their torch ops and loads in a fresh process."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from _export_helpers import run_fresh, save_torchscript
from test_library_kernels import INFO, build
from torchtvm.backend import build as builder
from torchtvm.backend import library, library_attention
from torchtvm.backend.executor import TvmRunner
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model

def _kernels_built() -> bool:
    import tvm_ffi

    return library.library_available() and tvm_ffi.get_global_func("torchtvm.attention", allow_missing=True) is not None


pytestmark = pytest.mark.skipif(not _kernels_built(), reason="libtorchtvm_runtime.so is not built (or predates the attention kernels)")


@pytest.fixture(autouse=True)
def _no_fast_path():
    # nn.MultiheadAttention's fast path is one fused op for eager runs; the export decomposes it.
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(was)


@pytest.fixture
def whole_ops(monkeypatch):
    """Set which whole ops go to the library for one test."""

    def use(*kinds):
        monkeypatch.setattr(library_attention, "WHOLE_OPS", kinds)

    return use


def run(model, inputs, dynamic_shapes=None, rtol=1e-4, atol=1e-4, example=None):
    """Build (library placement) and compare with eager PyTorch on `inputs` (a list of tuples);
    NaN positions and infinities must match exactly. Returns the offloads."""
    runner, offloads = build(model, example or inputs[0], "library", dynamic_shapes=dynamic_shapes)
    for args in inputs:
        with torch.no_grad():
            ref = model(*args)
        got = runner.run(list(args))[0]
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert torch.equal(torch.isnan(got), torch.isnan(ref)), "NaN positions differ"
        fin = torch.isfinite(ref)
        assert torch.equal(torch.isfinite(got), fin)
        torch.testing.assert_close(got[fin].float(), ref[fin].float(), rtol=rtol, atol=atol)
    return offloads


def kinds(offloads):
    return [o.kind for o in offloads]


class SDPA(nn.Module):
    """The encoder's attention as scripts/peers_models.py writes it: packed qkv, SDPA, heads merged."""

    def __init__(self, d=32, heads=4, mask=False):
        super().__init__()
        self.qkv, self.out, self.h, self.mask = nn.Linear(d, 3 * d), nn.Linear(d, d), heads, mask

    def forward(self, x, *mask):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask[0] if mask else None)
        return self.out(a.transpose(1, 2).reshape(b, t, d)) + x


class Handwritten(nn.Module):
    """Attention written out: matmul, scale, additive mask, plain softmax, matmul."""

    def forward(self, q, k, v, mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        return torch.softmax(s + mask, dim=-1) @ v


def test_encoder_layer_runs_attention_and_layer_norm_in_the_library(whole_ops):
    whole_ops("attention", "layer_norm")  # layer_norm is off by default (no faster than TVM's)
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    offloads = run(layer, [(torch.randn(2, 6, 32),)])
    assert kinds(offloads).count("attention") == 1 and kinds(offloads).count("layer_norm") == 2
    assert "matmul" not in kinds(offloads)  # the attention's batched matmuls went with it
    att = offloads[kinds(offloads).index("attention")]
    assert att.func == "torchtvm.attention" and "safe_softmax" in att.epilogue


def test_sdpa_with_symbolic_batch_and_sequence():
    torch.manual_seed(1)
    model = SDPA().eval()
    b, t = torch.export.Dim("batch", min=1, max=8), torch.export.Dim("seq", min=2, max=64)
    inputs = [(torch.randn(n, s, 32),) for n, s in ((1, 2), (3, 17), (8, 64))]
    offloads = run(model, inputs, dynamic_shapes=({0: b, 1: t},), example=(torch.randn(2, 5, 32),))
    assert "attention" in kinds(offloads)


def test_sdpa_with_a_float_mask_and_fully_masked_rows_as_pytorch():
    torch.manual_seed(2)
    model = SDPA(mask=True).eval()
    x = torch.randn(2, 5, 32)
    mask = torch.randn(2, 4, 5, 5)
    mask[0, 1, 2, :] = float("-inf")  # SDPA gives 0 for a row with nothing to attend to
    mask[1, :, :, 3] = float("-inf")
    offloads = run(model, [(x, mask)])
    att = offloads[kinds(offloads).index("attention")]
    assert "mask" in att.epilogue


def test_sdpa_nan_and_inf_propagate_as_in_pytorch():
    torch.manual_seed(3)
    model = SDPA().eval()
    x = torch.randn(2, 6, 32)
    x[0, 2, 5], x[1, 4, 0] = float("nan"), float("inf")
    assert "attention" in kinds(run(model, [(x,)]))


def test_handwritten_attention_keeps_eager_softmax_semantics():
    torch.manual_seed(4)
    q, k, v = torch.randn(2, 3, 7, 16), torch.randn(2, 3, 9, 16), torch.randn(2, 3, 9, 16)
    mask = torch.zeros(7, 9)
    offloads = run(Handwritten(), [(q, k, v, mask)])
    att = offloads[kinds(offloads).index("attention")]
    assert att.epilogue == ["scale", "mask", "softmax"]
    # A row with all -inf scores, and NaN in q: eager softmax gives NaN rows; so must the library.
    mask2 = mask.clone()
    mask2[3, :] = float("-inf")
    q2 = q.clone()
    q2[1, 2, 5, 0] = float("nan")
    run(Handwritten(), [(q, k, v, mask2), (q2, k, v, mask)], example=(q, k, v, mask))


def test_attention_over_3d_tensors_and_differing_key_length():
    torch.manual_seed(5)

    class M(nn.Module):
        def forward(self, q, k, v):
            return torch.softmax((q * 0.25) @ k.transpose(1, 2), -1) @ v

    q, k, v = torch.randn(3, 5, 16), torch.randn(3, 11, 16), torch.randn(3, 11, 16)
    assert "attention" in kinds(run(M(), [(q, k, v)]))


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_pytorch_with_symbolic_batch_and_nan(affine, whole_ops):
    whole_ops("layer_norm")
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(16, 24), nn.LayerNorm(24, elementwise_affine=affine)).eval()
    if affine:
        with torch.no_grad():
            model[1].weight.uniform_(0.5, 2)
            model[1].bias.uniform_(-1, 1)
    x = torch.randn(3, 5, 16)
    x[1, 2, 3] = float("nan")
    b = torch.export.Dim("batch", min=1, max=16)
    offloads = run(model, [(x,), (torch.randn(1, 5, 16),), (torch.randn(16, 5, 16),)], dynamic_shapes=({0: b},))
    assert "layer_norm" in kinds(offloads)


def test_layer_norm_over_two_trailing_dims(whole_ops):
    whole_ops("layer_norm")
    torch.manual_seed(7)
    model = nn.LayerNorm([5, 8]).eval()
    assert kinds(run(model, [(torch.randn(3, 5, 8) * 3 + 1,)])) == ["layer_norm"]


def test_softmax_kernel_matches_pytorch(whole_ops):
    whole_ops("softmax")  # on request (by default placement times it as an ATen call: library_aten.py)
    torch.manual_seed(8)

    class M(nn.Module):
        def forward(self, x):
            return torch.softmax(x * 2.0, dim=1)

    x = torch.randn(4, 6, 5)
    x[0, :, 1] = float("-inf")
    x[2, 3, 0] = float("nan")
    assert kinds(run(M(), [(x,)])) == ["softmax"]


def test_whole_ops_off_leave_the_matmuls_to_the_chains(whole_ops):
    whole_ops()
    torch.manual_seed(9)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    offloads = run(layer, [(torch.randn(2, 6, 32),)])
    assert kinds(offloads).count("matmul") == 2 and not {"attention", "softmax", "layer_norm"} & set(kinds(offloads))


def test_the_default_whole_op_is_attention():
    torch.manual_seed(12)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    offloads = run(layer, [(torch.randn(2, 6, 32),)])
    assert "attention" in kinds(offloads) and not {"layer_norm", "softmax"} & set(kinds(offloads))


# This CPU, and an AVX2-only one (haswell code runs on any AVX2 machine): each ISA's path is checked
# whichever machine runs the suite.
@pytest.mark.parametrize("target", ["llvm", '{"kind": "llvm", "mcpu": "haswell", "num-cores": 2}'], ids=["this-cpu", "avx2"])
def test_bfloat16_goes_to_the_library_only_with_cpu_support(target):
    """torch's SDPA decomposition upcasts a bfloat16 attention's q, k and v to float32, so the
    attention is a float32 library call on any CPU; the bfloat16 projections go to the library only
    where oneDNN has native bfloat16 (avx512_bf16 / AMX), and stay in TVM elsewhere."""
    info = builder.resolve_target(target, 2)
    has_bf16 = "bfloat16" in library.library_dtypes(info.features)
    torch.manual_seed(10)
    model = SDPA().eval().to(torch.bfloat16)
    x = torch.randn(2, 6, 32, dtype=torch.bfloat16)
    runner, offloads = build(model, (x,), "auto", info=info)
    assert "attention" in kinds(offloads)
    assert ("linear" in kinds(offloads)) == has_bf16, (target, kinds(offloads))
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0].float(), model(x).float(), rtol=3e-2, atol=3e-2)


def test_exported_encoder_records_the_ops_and_loads_in_a_fresh_process(tmp_path, whole_ops):
    whole_ops("attention", "layer_norm")
    torch.manual_seed(11)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, 6, 32)
    ts = save_torchscript(layer, (x,), str(tmp_path / "enc.pt"))
    spec = [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 4}, 6, 32], "dtype": "float32"}]
    out = str(tmp_path / "enc_tvm.pt")
    result = compile_model({"model": ts, "inputs": spec, "out_dir": str(tmp_path / "build"), "measure": False, "export_path": out}, JobContext("test"))
    assert result["verification"]["ok"]
    ops = result["placement"]["ops"]
    assert {"attention", "layer_norm"} <= {o["kind"] for o in ops if o["where"] == "library"}
    assert all(o["ms"] is not None for o in ops if o["where"] == "library")  # timed in the real run
    assert [o for o in ops if o["where"] == "tvm"] == []  # the attention's matmuls are not ops left in TVM
    meta = json.loads(torch.jit.load(out).torchtvm_module.metadata())["library_kernels"]
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in meta["ops"] and "aten::native_layer_norm" in meta["ops"]
    torch.save(layer.state_dict(), str(tmp_path / "sd.pt"))
    proc = run_fresh(f"""
        import torch, torchtvm
        torch.backends.mha.set_fastpath_enabled(False)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
        layer.load_state_dict(torch.load({str(tmp_path / "sd.pt")!r}))
        m = torch.jit.load({out!r})
        for n in (1, 4):
            x = torch.randn(n, 6, 32)
            y = m(x)
            with torch.no_grad():
                torch.testing.assert_close(y, layer(x), rtol=1e-4, atol=1e-4)
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def _attention(q, k, v, out, algorithm, mask=None, safe=1, scale=0.25):
    """torchtvm.attention called directly on [B, H, L, D] views (any strides, dense last dim)."""
    import tvm_ffi

    def view(t):
        return [t.storage_offset(), *t.shape, *t.stride()]

    attrs = [int(mask is not None), safe, *view(q), *view(k), *view(v), *view(out), algorithm]
    bases = [t._base if t._base is not None else t for t in (q, k, v)]
    tvm_ffi.get_global_func("torchtvm.attention")(*bases, *([mask] if mask is not None else []), tvm_ffi.Shape(attrs), scale, out)


@pytest.mark.parametrize("case", ["plain", "packed_qkv", "mask_with_empty_rows", "nan_and_inf", "unsafe_empty_row"])
def test_the_runtimes_own_attention_gives_what_torchs_kernel_gives(case):
    """Algorithm 1 (the runtime's GEMM and softmax) against torch's flash attention (algorithm 0),
    which the other tests hold to eager PyTorch: same values, same NaN and inf, on strided views, a
    float mask with rows that attend to nothing, non-finite inputs, and a plain softmax's (unsafe)
    all -inf row (those rows go back to torch's kernels)."""
    torch.manual_seed(6)
    B, H, L, S, D = 2, 3, 37, 45, 24
    q, k, v = torch.randn(B, H, L, D), torch.randn(B, H, S, D), torch.randn(B, H, S, D)
    mask, safe = None, 1
    if case == "packed_qkv":  # q, k, v as views of one projection, as an encoder has them
        qkv = torch.randn(B, L, 3, H, D)
        q, k, v = (qkv[:, :, i].permute(0, 2, 1, 3) for i in range(3))
    elif case == "mask_with_empty_rows":
        mask = torch.randn(B, H, L, S)
        mask[0, 1, 2, :] = float("-inf")
        mask[1, :, :, 3] = float("-inf")
    elif case == "nan_and_inf":
        q[0, 1, 4, 2], k[1, 2, 7, 0], v[0, 0, 9, 5] = float("nan"), float("inf"), float("-inf")
    elif case == "unsafe_empty_row":
        mask, safe = torch.zeros(B, H, L, S), 0
        mask[1, 1, 5, :] = float("-inf")
    shape = (B, H, q.shape[2], D)
    want, got = torch.empty(shape), torch.empty(shape)
    _attention(q, k, v, want, 0, mask, safe)
    _attention(q, k, v, got, 1, mask, safe)
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    fin = torch.isfinite(want)
    torch.testing.assert_close(got[fin], want[fin], rtol=1e-5, atol=1e-5)
    if case != "plain":
        return
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.25)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_attention_is_timed_both_ways_and_a_slowed_own_kernel_loses():
    """Placement times torch's flash attention and the runtime's own; the own one, made slower on
    purpose (torchtvm.debug_delay_kernel), is not chosen."""
    from _timing_helpers import timed_slow_and_fast

    from torchtvm.backend import measure
    from torchtvm.frontend.importer import import_program

    torch.manual_seed(7)
    model, x = SDPA(d=64).eval(), torch.randn(2, 16, 64)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    placed, offloads = builder.place(mod, INFO, "library")
    offloads = [o for o in offloads if o.kind == "attention"]
    slowed, fast = timed_slow_and_fast(placed, offloads, "attention")
    assert slowed.others_ms["own"] >= 20.0 and slowed.library_ms < 20.0 and slowed.algorithm == ""
    assert fast.others_ms["own"] < 20.0
    assert (fast.algorithm == "own") == (fast.others_ms["own"] < fast.library_ms * measure.MARGIN)
    # The choice is applied to the call, and the model still matches PyTorch.
    chosen = library.use_algorithms(placed, offloads, {offloads[0].name: "own"})
    runner = TvmRunner(builder.compile_placed(chosen, INFO, None))
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-4, atol=1e-4)
