"""The graph every placement builds from (backend/layout.py): 1-D convolutions become 2-D ones over
a height of 1, so the library runs them, and a graph with negative reduction axes (an adaptive 1-D
pool) still moves to channels-last instead of failing in TVM's layout pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from torchtvm.backend import build as builder
from torchtvm.backend import library
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)


def audio_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 16, 20, stride=4), nn.GroupNorm(4, 16), nn.GELU(),
        nn.Conv1d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(32, 32, 3, padding=2, dilation=2, groups=4, bias=False), nn.GroupNorm(8, 32), nn.GELU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 5),
    ).eval()


def test_conv1d_runs_in_the_library_and_matches_pytorch():
    model, x = audio_net(), torch.randn(2, 1, 400)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    executable, offloads = builder.build_placed(mod, INFO, None, "auto")
    assert [o.kind for o in offloads].count("conv2d") + [o.kind for o in offloads].count("grouped_conv2d") == 3
    with torch.no_grad():
        torch.testing.assert_close(TvmRunner(executable).run([x])[0], model(x), rtol=1e-4, atol=1e-4)


def test_a_conv1d_net_keeps_no_copy_between_its_library_calls():
    """Between a Conv1d's 2-D library convolution and the ops on its [N, L, C] result, the layout
    pass leaves expand_dims / squeeze / unit-dim permutes: each becomes one reshape (a view), the
    convolution takes its bias, and a max pool over time (NWHC after the layout pass) runs the
    runtime's pooling kernel. The numbers are PyTorch's, NaN and inf included."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(2, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(16, 8, 3), nn.GELU()).eval()
    x = torch.randn(2, 2, 60)
    mod = import_program(torch.export.export(model, (x,)), [x], 1).mod
    prepared = builder.prepare(mod, INFO)
    ops = [str(b.value.op.name) for blk in prepared["main"].body.blocks for b in blk.bindings if hasattr(b.value, "op") and hasattr(b.value.op, "name")]
    assert not {"relax.expand_dims", "relax.squeeze"} & set(ops)
    assert ops.count("relax.permute_dims") <= 2  # the model's input and output, NCW <-> NWC
    executable, offloads = builder.build_placed(mod, INFO, None, "library")
    assert [o.kind for o in offloads] == ["conv2d", "max_pool2d", "conv2d"]
    assert all("bias" in o.epilogue for o in offloads if o.kind == "conv2d")
    x[0, 1, 7], x[1, 0, 30] = float("nan"), float("inf")
    with torch.no_grad():
        ref = model(x)
    got = TvmRunner(executable).run([x])[0]
    assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.isinf(), ref.isinf())
    torch.testing.assert_close(got[torch.isfinite(ref)], ref[torch.isfinite(ref)], rtol=1e-4, atol=1e-4)
