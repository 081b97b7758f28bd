"""PyTorch's own kernel as a candidate for ops without a library kernel (backend/library_aten.py,
native/runtime/src/library_aten.cc): each op the converter takes runs as a torchtvm.aten call that
matches PyTorch (NaN and inf included) in the layout the graph has it (channels-last buffers as
permuted views); placement times it against TVM's kernel and the report shows both."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from torchtvm.backend import build as builder
from torchtvm.backend import library, library_aten, measure
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)


class Net(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 16, 3, padding=1)  # puts the graph in NHWC (a library conv)
        self.gn = nn.GroupNorm(4, 16)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(16, 24, 2, stride=2)  # a UNet's up-convolution: kernel = stride
        self.conv1d = nn.Conv1d(3, 8, 5)
        self.gn1d = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(40)
        torch.nn.init.normal_(self.ln.weight)
        torch.nn.init.normal_(self.ln.bias)

    def forward(self, x):
        if self.kind == "group_norm_1d":
            return torch.relu(self.gn1d(self.conv1d(x)))
        if self.kind == "layer_norm":
            return self.ln(x)
        if self.kind == "log_softmax":
            return torch.log_softmax(x, dim=-1)
        if self.kind == "sum":
            return x.sum(1)
        if self.kind == "sum_all":
            return x.sum()
        if self.kind == "permute":
            return x.permute(2, 0, 1) * 2.0
        if self.kind == "cumsum":
            return x.cumsum(2)
        y = torch.relu(self.conv(x))
        if self.kind == "softmax":  # over the channels, which NHWC keeps last
            return torch.softmax(y, dim=1)
        if self.kind == "mean":  # a global average pool of an NHWC buffer
            return y.mean((2, 3))
        if self.kind == "amax":  # the whole tensor's
            return y.max()
        if self.kind == "group_norm":
            return self.gn(y)
        if self.kind == "avg_pool2d":
            return self.pool(y)
        if self.kind == "up_conv":
            return self.up2(y)
        return self.up(y)


# model -> (input shape, the ATen op its call runs, the placement kind)
CASES = {
    "group_norm": ((2, 3, 10, 9), "aten::group_norm", "group_norm"),
    "group_norm_1d": ((2, 3, 40), "aten::group_norm", "group_norm"),
    "avg_pool2d": ((1, 3, 11, 12), "aten::avg_pool2d", "avg_pool2d"),
    "conv_transpose2d": ((1, 3, 7, 6), "aten::conv_transpose2d.input", "conv_transpose2d"),
    "up_conv": ((2, 3, 5, 7), "aten::conv_transpose2d.input", "conv_transpose2d"),
    # out of place, then copied into TVM's buffer
    "layer_norm": ((2, 5, 40), "aten::layer_norm", "layer_norm"),
    # out= variants: written into TVM's buffer (through its permuted view where it is channels-last)
    "softmax": ((2, 3, 6, 5), "aten::_softmax.out", "softmax"),
    "log_softmax": ((2, 3, 40), "aten::_log_softmax.out", "log_softmax"),
    "mean": ((2, 3, 9, 7), "aten::mean.out", "mean"),
    "sum": ((2, 3, 40), "aten::sum.IntList_out", "sum"),
    "sum_all": ((2, 3, 40), "aten::sum.IntList_out", "sum"),
    "amax": ((2, 3, 9, 7), "aten::amax.out", "max"),
    "permute": ((2, 3, 40), "aten::copy_", "permute"),
    "cumsum": ((2, 3, 40), "aten::cumsum.out", "cumsum"),
}
# The ops the runtime also has its own kernel for (a third candidate).
OWN = {
    "group_norm": "torchtvm::group_norm_channels_last",
    "group_norm_1d": "torchtvm::group_norm_channels_last",
    "up_conv": "torchtvm::conv_transpose2d_channels_last",
    "layer_norm": "torchtvm::layer_norm_out",  # torch's LayerNormKernel into TVM's buffer
    "mean": "torchtvm::mean_rows_out",  # a global average pool of an NHWC buffer
}


def build_as_aten(model, x, own=False):
    """Every op of the model's kind (CASES) the converter takes as a torchtvm.aten call: PyTorch's
    kernel, or (own) the runtime's own kernel where it has one."""
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    placed, _ = builder.place(mod, INFO, "library")
    calls = library_aten.aten_calls(placed)
    kind = CASES[model.kind][2] if getattr(model, "kind", None) in CASES else None
    names = frozenset(c.name for c in calls if kind is None or c.kind == kind)
    placed, offloads = library_aten.offload(placed, names, names if own else frozenset())
    return TvmRunner(builder.compile_placed(placed, INFO)), offloads, placed


def test_an_embedding_as_index_select_matches_pytorch():
    """An embedding (TVM's take of the table by the flattened tokens) as PyTorch's index_select,
    into TVM's buffer; every token gets its row."""

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = nn.Embedding(50, 16)

        def forward(self, i):
            return self.e(i) * 3.0

    torch.manual_seed(6)
    model, tokens = Embed().eval(), torch.randint(0, 50, (2, 7))
    mod = import_program(torch.export.export(model, (tokens,)), [tokens], 1).mod
    placed, _ = builder.place(mod, INFO, "library")
    names = frozenset(c.name for c in library_aten.aten_calls(placed) if c.kind == "take")
    placed, offloads = library_aten.offload(placed, names)
    assert [o.aten for o in offloads] == ["aten::index_select.out"]
    got = TvmRunner(builder.compile_placed(placed, INFO)).run([tokens])[0]
    with torch.no_grad():
        assert torch.equal(got, model(tokens))


def test_ops_the_own_kernels_do_not_cover_have_none():
    """A transposed convolution with padding, or a kernel other than its stride, keeps PyTorch's
    and TVM's kernels as its only candidates."""
    x = torch.randn(1, 3, 7, 6)
    mod = import_program(torch.export.export(Net("conv_transpose2d").eval(), (x,)), [x], 1).mod
    placed, _ = builder.place(mod, INFO, "library")
    assert [c.own for c in library_aten.aten_calls(placed) if c.kind == "conv_transpose2d"] == [None]


def assert_nan_and_inf_as_in_pytorch(runner, model, x):
    """A NaN and an inf in the input come out where PyTorch has them; the rest matches."""
    x = x.clone()
    x[0, 1].view(-1)[3] = math.nan
    x[-1, 2].view(-1)[-2] = math.inf
    with torch.no_grad():
        got, ref = runner.run([x])[0], model(x)
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    finite = torch.isfinite(ref)
    torch.testing.assert_close(got[finite], ref[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", list(CASES))
def test_each_op_as_an_aten_call_matches_pytorch_with_nan_and_inf(kind):
    torch.manual_seed(0)
    shape, op, _ = CASES[kind]
    model, x = Net(kind), torch.randn(*shape)
    runner, offloads, _ = build_as_aten(model, x)
    assert [o.aten for o in offloads] == [op] and offloads[0].func == "torchtvm.aten"
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-4, atol=1e-4)
    assert_nan_and_inf_as_in_pytorch(runner, model, x)


@pytest.mark.parametrize("kind", list(OWN))
def test_the_runtimes_own_kernels_match_pytorch_with_nan_and_inf(kind):
    """A GroupNorm on a channels-last buffer (after a library convolution), a transposed
    convolution whose kernel equals its stride, a LayerNorm and a mean that keeps the innermost
    axis have a third candidate, the runtime's own kernel (library_norm.cc, library_upsample.cc,
    library_attention.cc, library_reduce.cc: torch ops called through the same torchtvm.aten call,
    per ISA where it is the runtime's code): the same numbers as PyTorch, NaN and inf spreading as
    in PyTorch; a large mean (a two-pass variance) loses no precision. Only the ops
    it applies to get it."""
    torch.manual_seed(3)
    shape, _, _ = CASES[kind]
    model, x = Net(kind), torch.randn(*shape)
    runner, offloads, _ = build_as_aten(model, x, own=True)
    assert [(o.aten, o.algorithm) for o in offloads] == [(OWN[kind], "own")]
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-4, atol=1e-4)
        far = x * 0.01 + 1000.0
        torch.testing.assert_close(runner.run([far])[0], model(far), rtol=1e-3, atol=1e-3)
    assert_nan_and_inf_as_in_pytorch(runner, model, x)


def test_layer_norm_softmax_and_reductions_are_timed_not_placed_by_rule():
    """Nothing unmeasured: a LayerNorm, a softmax and a mean that no attention took are each timed
    as TVM's kernel and as PyTorch's (a LayerNorm also as torch's kernel writing into TVM's buffer,
    the mean as the runtime's own), and each goes where it timed faster."""

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = nn.LayerNorm(32)

        def forward(self, x):
            return torch.softmax(self.ln(x), dim=-1).mean(1)

    x = torch.randn(2, 24, 32)
    mod = import_program(torch.export.export(Head().eval(), (x,)), [x], 1).mod
    placed, _ = builder.place(mod, INFO, "library")
    timed = measure.time_aten_ops(placed, INFO, None, rounds=1, calls=3)
    kinds = {c.name: c.kind for c in library_aten.aten_calls(placed)}
    assert sorted(kinds[n] for n in timed) == ["layer_norm", "mean", "softmax"]
    for name, t in timed.items():
        assert t.library_ms > 0 and t.tvm_ms > 0
        # the runtime's own: torch's LayerNormKernel into TVM's buffer; its mean over rows
        assert ("own" in t.others_ms) == (kinds[name] in ("layer_norm", "mean"))


def test_ops_of_the_same_signature_are_built_and_timed_once(monkeypatch):
    """A transformer's repeated blocks: two LayerNorms of one shape (their weights differ) are
    built and timed once, and both get those times."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.LayerNorm(32), nn.LayerNorm(32)

        def forward(self, x):
            return self.b(self.a(x))

    x = torch.randn(2, 24, 32)
    mod = import_program(torch.export.export(Twice().eval(), (x,)), [x], 1).mod
    placed, _ = builder.place(mod, INFO, "library")
    built = []
    real = measure.time_functions
    monkeypatch.setattr(measure, "time_functions", lambda funcs, *a, **k: built.extend(funcs) or real(funcs, *a, **k))
    timed = measure.time_aten_ops(placed, INFO, None, rounds=1, calls=3)
    assert len(timed) == 2 and len({(t.library_ms, t.tvm_ms) for t in timed.values()}) == 1
    assert sorted(n.split("_")[0] for n in built) == ["aten", "own", "tvm"]


def test_a_slowed_own_group_norm_loses_its_place():
    """Placement times the runtime's GroupNorm beside PyTorch's and TVM's; made slower on purpose
    (torchtvm.debug_delay_kernel), it is not chosen, and each time is what decides."""
    import tvm_ffi

    torch.manual_seed(4)
    model, x = Net("group_norm_1d"), torch.randn(2, 3, 40)
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 1).mod
    placed, _ = builder.place(mod, INFO, "library")
    delay = tvm_ffi.get_global_func("torchtvm.debug_delay_kernel")
    try:
        delay("group_norm", 20000)
        (slowed,) = [t for t in measure.time_aten_ops(placed, INFO, None, rounds=1, calls=3).values() if "own" in t.others_ms]
    finally:
        delay("group_norm", 0)
    assert slowed.others_ms["own"] >= 20.0 and slowed.algorithm != "own"
    (fast,) = [t for t in measure.time_aten_ops(placed, INFO, None, rounds=1, calls=3).values() if "own" in t.others_ms]
    assert fast.others_ms["own"] < 20.0
    assert (fast.algorithm == "own") == (fast.others_ms["own"] < fast.library_ms * measure.MARGIN)


def test_placement_times_both_and_the_report_shows_them(tmp_path):
    from torchtvm.common.progress import JobContext
    from torchtvm.pipeline.compile import compile_model

    torch.manual_seed(1)
    model, x = Net("group_norm_1d"), torch.randn(2, 3, 40)
    path = str(tmp_path / "net.pt")
    torch.jit.save(torch.jit.trace(model.eval(), x), path)
    params = {"model": path, "inputs": [{"name": "x", "dims": [2, 3, 40]}], "out_dir": str(tmp_path / "build"), "measure": False, "edge_values": False}
    placement = compile_model(params, JobContext("test"))["placement"]
    (gn,) = [o for o in placement["ops"] if o["kind"] == "group_norm"]
    times = gn["alone_ms"]
    assert times["library"] > 0 and times["tvm"] > 0 and times["own"] > 0
    own = times["own"] < times["library"] * measure.MARGIN
    best = times["own"] if own else times["library"]
    to_aten = best < times["tvm"] * measure.MARGIN
    assert gn["where"] == ("library" if to_aten else "tvm")
    assert gn.get("aten") == (None if not to_aten else "torchtvm::group_norm_channels_last" if own else "aten::group_norm")
    assert "without a library kernel timed as TVM's kernel and as PyTorch's" in placement["note"]
    assert gn.get("scope") == "gn1d"  # the row is named by its place in the model
    # So is the Conv1d's, which the build runs as a conv2d over a height of 1.
    (conv,) = [o for o in placement["ops"] if o["kind"] == "conv2d"]
    assert conv.get("scope") == "conv1d"


def test_an_export_with_aten_calls_records_their_schemas_and_loads(tmp_path):
    from torchtvm.backend.placement import export_metadata

    torch.manual_seed(2)
    _, offloads, _ = build_as_aten(Net("conv_transpose2d"), torch.randn(1, 3, 7, 6))
    meta = export_metadata(offloads)
    assert "torchtvm.aten" in meta["functions"] and meta["ops"]["aten::conv_transpose2d.input"].startswith("aten::conv_transpose2d.input(")


class GroupNormAct(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.conv, self.gn, self.act = nn.Conv1d(3, 16, 5), nn.GroupNorm(4, 16), act

    def forward(self, x):
        return self.act(self.gn(self.conv(x)))


@pytest.mark.parametrize(
    "act,name",
    [(nn.GELU(), "gelu"), (nn.GELU(approximate="tanh"), "gelu_tanh"), (nn.SiLU(), "silu"), (nn.Sigmoid(), "sigmoid"), (nn.ReLU(), "relu")],
)
def test_the_own_group_norm_applies_the_activation_after_it(act, name):
    """The runtime's GroupNorm takes the activation that follows it into its last pass (one pass
    over the activation instead of a TVM kernel more): the conv1d's bias goes into the
    convolution, the activation into the GroupNorm, and the numbers are PyTorch's, NaN and inf
    included."""
    torch.manual_seed(5)
    model, x = GroupNormAct(act), torch.randn(2, 3, 50)
    runner, offloads, placed = build_as_aten(model, x, own=True)
    assert [(o.aten, o.epilogue) for o in offloads] == [("torchtvm::group_norm_channels_last", [name])]
    ops = {op for op in (str(getattr(getattr(b.value, "op", None), "name", "")) for blk in placed["main"].body.blocks for b in blk.bindings)}
    assert not ops & {"relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu", "relax.sigmoid", "relax.nn.relu", "relax.add"}
    conv = library.library_calls(placed, "torchtvm.conv2d")
    assert len(conv) == 1 and int(list(conv.values())[0].args[1].fields[-1].values[8]) == 1  # has_bias
    with torch.no_grad():
        torch.testing.assert_close(runner.run([x])[0], model(x), rtol=1e-4, atol=1e-4)
    assert_nan_and_inf_as_in_pytorch(runner, model, x)
