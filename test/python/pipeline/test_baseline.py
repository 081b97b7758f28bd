"""The measure stage times the build against TorchScript frozen (the fastest way PyTorch runs the
model), in interleaved rounds, and a build slower than that says so: by how much, and which kernels
take its time."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from torchtvm.backend import library
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(self.lstm(x)[0])


def compile_tagger(tmp_path, **params):
    torch.manual_seed(0)
    model, x = Tagger().eval(), torch.randn(2, 5, 8)
    path = str(tmp_path / "tagger.pt")
    torch.jit.save(torch.jit.trace(model, x), path)
    base = {"model": path, "inputs": [{"name": "x", "dims": [2, 5, 8]}], "out_dir": str(tmp_path / "build"), "edge_values": False}
    return compile_model({**base, **params}, JobContext("test"))


def test_the_baseline_is_torchscript_frozen_timed_with_the_build(tmp_path):
    lat = compile_tagger(tmp_path)["latency_ms"]
    assert lat["baseline"] == "TorchScript frozen" and lat["torch_frozen"]["p50"] > 0
    assert lat["baseline_ratio"] == pytest.approx(lat["tvm"]["p50"] / lat["torch_frozen"]["p50"])
    # 5 rounds of at least 3 calls; leading rounds still warming up are left out (at least 2 stay)
    assert min(lat["torch"]["runs"], lat["torch_frozen"]["runs"], lat["tvm"]["runs"]) >= 6


def test_a_slower_build_says_by_how_much_and_where_its_time_goes(tmp_path):
    import tvm_ffi

    delay = tvm_ffi.get_global_func("torchtvm.debug_delay_kernel")
    try:
        delay("recurrent", 4000)  # the runtime's LSTM made slow on purpose; placement `library` keeps it
        res = compile_tagger(tmp_path, placement="library")
    finally:
        delay("recurrent", 0)
    slower = res["slower"]
    assert slower["ratio"] > 1.5 and slower["baseline"] == "TorchScript frozen"
    assert slower["costliest"][0]["kernel"] == "torchtvm.lstm" and slower["costliest"][0]["share"] > 0.5
    assert slower["message"].startswith(f"This build is {slower['ratio']:.2f}× slower than the model you brought, run as TorchScript frozen")
    assert "torchtvm.lstm" in slower["message"]
