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
