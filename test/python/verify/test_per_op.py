"""Per-op comparison with PyTorch (compile --compare-ops, verify/per_op.py): every kernel call of a
build is matched to its node of the model and compared with PyTorch's value for that node; a
library kernel made wrong on purpose is named as the first op past the tolerance."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn as nn

from torchtvm.backend import library
from torchtvm.common.errors import EngineError
from torchtvm.common.options import CompileOptions
from torchtvm.common.progress import JobContext
from torchtvm.pipeline import compile as compile_mod
from torchtvm.pipeline.compile import compile_run
from torchtvm.service.params import check_params
from torchtvm.verify.per_op import compare_tensor

needs_library = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")


class Small(nn.Module):
    """conv+BatchNorm+relu, conv+residual+relu, max pool, flatten, linear: library convolutions in
    NHWC, a TVM kernel back to NCHW, a library linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        h = self.pool(torch.relu(self.conv2(h) + h))
        return self.fc(h.flatten(1))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> str:
    torch.manual_seed(0)
    m = Small().eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("per_op") / "small.pt"
    torch.jit.trace(m, torch.randn(1, 3, 8, 8)).save(str(path))
    return str(path)


def _compile(path: str, tmp_path, **params):
    request = {"model": path, "inputs": [{"name": "x", "dims": [1, 3, 8, 8], "dtype": "float32"}], "out_dir": str(tmp_path / "build"), "measure": False, "edge_values": False, **params}
    return compile_run(CompileOptions.from_params(request), JobContext("test", None)).result


@contextlib.contextmanager
def wrong_conv2d(in_channels: int, delta: float = 0.5):
    """The runtime's torchtvm.conv2d made wrong for convolutions reading `in_channels` channels:
    their output is off by `delta`. The Relax VM resolves the function when it is
    made, so every build and run inside the block calls this one."""
    import tvm_ffi

    original = tvm_ffi.get_global_func("torchtvm.conv2d")

    def wrong(*args):
        original(*args)
        attrs = list(args[-2])  # ending in 1 after the algorithm: the input is NCHW
        if args[0].shape[1 if len(attrs) == 12 and attrs[11] == 1 else -1] == in_channels:
            torch.from_dlpack(args[-1]).add_(delta)

    tvm_ffi.register_global_func("torchtvm.conv2d", wrong, override=True)
    try:
        yield
    finally:
        tvm_ffi.register_global_func("torchtvm.conv2d", original, override=True)


@needs_library
def test_every_op_of_a_small_model_matches(small_model, tmp_path):
    r = _compile(small_model, tmp_path, compare_ops=True)
    oc = r["op_comparison"]
    ops = oc["ops"]
    assert oc["first_failing"] is None, oc
    assert all(o["ok"] for o in ops), ops
    # The library calls (two convolution chains, the pool, the linear) and the TVM kernel between
    # them (the transpose before the flatten, named by the view), in run order, each named by its
    # node of the model. Where PyTorch's copy timed faster than TVM's transpose, that transpose is an
    # ATen call no node of the model computes (unmapped, below).
    kinds = [(o["kind"], o["where"]) for o in ops]
    view = ("view", "tvm") in kinds
    assert kinds == [("conv2d", "library"), ("conv2d", "library"), ("max_pool2d", "library")] + ([("view", "tvm")] if view else []) + [("linear", "library")]
    assert [o.get("scope") for o in ops] == ["conv1", "conv2", "pool"] + ([None] if view else []) + ["fc"]
    assert all(o.get("node") for o in ops)
    # The BatchNorm and relu fused into the first call are named as the placement report names them.
    placed = {o["name"]: o for o in r["placement"]["ops"]}
    assert ops[0]["fused"] == placed[ops[0]["op"]]["fused"] and len(ops[0]["fused"]) == 2
    # NHWC values are compared in the model's layout, shapes as PyTorch has them.
    assert ops[0]["layout"] == "channels-last" and ops[0]["shape"] == [1, 8, 8, 8]
    assert "layout" not in ops[-1] and ops[-1]["shape"] == [1, 10]
    # The last op is the model's output: the same comparison as the verification's.
    assert math.isclose(ops[-1]["max_abs"], r["verification"]["outputs"][0]["max_abs"], rel_tol=1e-6, abs_tol=1e-12)
    # The input's move to NHWC, unless the first convolution reads it where it lies (the direct
    # loop), and the flatten's where it is no TVM kernel: TVM's transposes or PyTorch's copies.
    unmapped = [u["kernel"] for u in oc["unmapped"]]
    assert set(unmapped) <= {"transpose", "torchtvm.aten"}
    assert len(unmapped) == (placed[ops[0]["op"]].get("algorithm") != "direct") + (not view)
    assert oc["tolerance"]["by_dtype"] == {"float32": {"atol": 1e-4, "rtol": 1e-3}}
    assert "compare_ops" in r["timings_s"]


@needs_library
def test_tvm_kernels_are_mapped_through_fusion(small_model, tmp_path):
    r = _compile(small_model, tmp_path, compare_ops=True, placement="tvm")
    ops = r["op_comparison"]["ops"]
    assert r["op_comparison"]["first_failing"] is None and all(o["ok"] for o in ops), ops
    assert {o["where"] for o in ops} == {"tvm"}
    # Each fused kernel is named by the node of its output, with the nodes fused into it.
    assert [o["kind"] for o in ops] == ["relu", "relu", "max_pool2d_with_indices", "view", "addmm"]
    assert ops[0]["kernel"].startswith("fused_conv2d") and ops[0]["fused"]
    assert ops[1]["scope"] == "conv2"  # the residual block's kernel: by the conv fused into it
    # Every kernel call is timed alone (TVM's kernels too, not only library calls), once per call.
    assert all(o["ms"] > 0 for o in ops), [o.get("ms") for o in ops]


@needs_library
def test_a_wrong_library_kernel_is_named_first(small_model, tmp_path):
    with wrong_conv2d(in_channels=8):  # conv2 only (conv1 reads 3 channels)
        r = _compile(small_model, tmp_path, compare_ops=True)
    oc = r["op_comparison"]
    ops = {o["op"]: o for o in oc["ops"]}
    first = ops[oc["first_failing"]]
    assert first["kind"] == "conv2d" and first["scope"] == "conv2" and first["where"] == "library"
    assert first["max_abs"] == pytest.approx(0.5, rel=1e-3) and "exceeds" in first["reason"]
    # The op before it is fine; the ops after it inherit its error.
    order = [o["op"] for o in oc["ops"]]
    i = order.index(oc["first_failing"])
    assert i == 1 and oc["ops"][0]["ok"]
    assert not any(o["ok"] for o in oc["ops"][i:])
    assert oc["first_failing"] in oc["note"]
    assert not r["verification"]["ok"]


def test_default_build_compares_no_ops(small_model, tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the default build must not compare ops")

    monkeypatch.setattr(compile_mod, "compare_ops", refuse)
    r = _compile(small_model, tmp_path)
    assert "op_comparison" not in r and "compare_ops" not in r["timings_s"]
    assert CompileOptions.from_params({"model": small_model, "inputs": [{"name": "x", "dims": [1], "dtype": "float32"}]}).compare_ops is False


def test_compare_ops_parameter_is_a_boolean():
    check_params("compile", {"compare_ops": True})
    with pytest.raises(EngineError, match="compare_ops"):
        check_params("compile", {"compare_ops": "yes"})


def test_compare_tensor_layout_nan_and_dtype():
    r = torch.randn(1, 4, 3, 5)
    nhwc = r.permute(0, 2, 3, 1).contiguous()
    e = compare_tensor(nhwc, r)
    assert e["ok"] and e["layout"] == "channels-last" and e["max_abs"] == 0.0 and e["shape"] == [1, 4, 3, 5]
    # A square activation fits both layouts: the one that matches is chosen.
    sq = torch.randn(1, 3, 3, 3)
    e = compare_tensor(sq.permute(0, 2, 3, 1).contiguous(), sq)
    assert e["ok"] and e["layout"] == "channels-last"
    e = compare_tensor(sq.clone(), sq)
    assert e["ok"] and "layout" not in e
    bad = r.clone()
    bad[0, 0, 0, 0] = float("nan")
    bad[0, 1, 0, 0] = float("inf")
    e = compare_tensor(bad, r)
    assert not e["ok"] and e["nan_inf_mismatches"] == 2
    e = compare_tensor(r.double(), r)
    assert not e["ok"] and "dtype" in e["reason"]
    e = compare_tensor(torch.randn(2, 7), r)
    assert not e["ok"] and "shape" in e["reason"]
    ints = torch.arange(6)
    assert compare_tensor(ints.clone(), ints)["ok"] and not compare_tensor(ints + 1, ints)["ok"]


def test_compare_tensor_gives_both_tensors_statistics_and_a_histogram_of_the_difference():
    torch.manual_seed(0)
    r = torch.randn(1, 4, 6, 6)
    a = r.clone()
    a[0, 0, 0, :4] += torch.tensor([1e-5, 2e-5, 4e-5, 8e-5])
    a[0, 1, 0, 0] = float("nan")
    # Channels-last in the build: the statistics are of the value in the model's layout.
    e = compare_tensor(a.permute(0, 2, 3, 1).contiguous(), r)
    assert e["layout"] == "channels-last"
    ref, built = e["stats"]["reference"], e["stats"]["build"]
    assert ref["nonfinite"] == 0 and built["nonfinite"] == 1
    assert ref["min"] == pytest.approx(float(r.min())) and ref["max"] == pytest.approx(float(r.max()))
    assert ref["mean"] == pytest.approx(float(r.double().mean())) and ref["std"] == pytest.approx(float(r.double().std(unbiased=False)))
    finite = a[torch.isfinite(a)].double()
    assert built["mean"] == pytest.approx(float(finite.mean()))
    h = e["diff_histogram"]
    # Over the positions where both are finite: 143 values, 4 of them off (none in the first bin); the largest in the last.
    assert len(h["counts"]) == 16 and sum(h["counts"]) == r.numel() - 1
    assert h["max"] == pytest.approx(e["max_abs"]) and h["max"] == pytest.approx(8e-5, rel=1e-3)
    assert h["counts"][-1] == 1 and h["counts"][0] == r.numel() - 1 - 4
    # The row keeps the scale its tolerance is taken against (atol + rtol x scale).
    assert e["scale"] == pytest.approx(float(r.abs().max()))
    same = compare_tensor(r.clone(), r)
    assert same["diff_histogram"] == {"max": 0.0, "counts": [r.numel()] + [0] * 15}
