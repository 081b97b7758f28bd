"""The measure stage times the build against TorchScript as loaded and frozen, in interleaved rounds;
the faster of the two is the baseline, and a build slower than that says so: by how much, and which
kernels take its time."""

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


def test_the_baseline_is_the_faster_torchscript_timed_with_the_build(tmp_path):
    lat = compile_tagger(tmp_path)["latency_ms"]
    assert lat["torch_frozen"]["p50"] > 0
    frozen_faster = lat["torch_frozen"]["p50"] <= lat["torch"]["p50"]
    assert lat["baseline"] == ("TorchScript frozen" if frozen_faster else "TorchScript")
    assert lat["baseline_ratio"] == pytest.approx(lat["tvm"]["p50"] / min(lat["torch_frozen"]["p50"], lat["torch"]["p50"]))
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
    assert slower["ratio"] > 1.5 and slower["baseline"] in ("TorchScript frozen", "TorchScript")
    assert slower["costliest"][0]["kernel"] == "torchtvm.lstm" and slower["costliest"][0]["share"] > 0.5
    assert slower["message"].startswith(f"This build is {slower['ratio']:.2f}× slower than the model you brought, run as {slower['baseline']}")
    assert "torchtvm.lstm" in slower["message"]


def test_torchscript_as_loaded_is_the_baseline_where_frozen_is_slower(tmp_path, monkeypatch):
    # Frozen made slower on purpose (each call runs the model four times): the model as loaded is
    # what the user already has at its fastest, so the build is measured against it.
    from torchtvm.backend import latency

    real = latency.frozen_torchscript

    def slow_frozen(module):
        frozen, why = real(module)

        def run(*args):
            for _ in range(4):
                out = frozen(*args)
            return out

        return run, why

    monkeypatch.setattr(latency, "frozen_torchscript", slow_frozen)
    lat = compile_tagger(tmp_path)["latency_ms"]
    assert lat["torch_frozen"]["p50"] > lat["torch"]["p50"]
    assert lat["baseline"] == "TorchScript"
    assert lat["baseline_ratio"] == pytest.approx(lat["tvm"]["p50"] / lat["torch"]["p50"])
    assert lat["baseline_note"].startswith("TorchScript as loaded: faster here than frozen")
