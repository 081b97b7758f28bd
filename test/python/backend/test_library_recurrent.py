"""Whole LSTM / GRU layers as library kernels (backend/recurrent.py, native/runtime/src/
library_recurrent.cc): imported as one call each, run by torch's fused kernel, matching PyTorch in
every configuration; placement `tvm` unrolls them into TVM's ops and must match too. A symbolic
batch runs one module; the exported model loads in a fresh process."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn

from _export_helpers import run_fresh
from torchtvm.backend import build as builder
from torchtvm.backend import library, measure
from torchtvm.backend.executor import TvmRunner
from torchtvm.frontend.importer import import_program
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model

pytestmark = pytest.mark.skipif(not library.library_available(), reason="libtorchtvm_runtime.so is not built")

INFO = builder.resolve_target("llvm", 2)


class Rnn(nn.Module):
    """Returns every output of the layer: the sequence and the final states."""

    def __init__(self, cell, **kw):
        super().__init__()
        self.rnn = cell(8, 12, **kw)

    def forward(self, x):
        out, state = self.rnn(x)
        return (out, *state) if isinstance(state, tuple) else (out, state)


def build(model, x, placement, dynamic_shapes=None):
    ep = torch.export.export(model.eval(), (x,), dynamic_shapes=dynamic_shapes)
    with torch.no_grad():
        n_out = len(model(x))
    mod = import_program(ep, [x], n_out).mod
    executable, offloads = builder.build_placed(mod, INFO, None, placement)
    return TvmRunner(executable), offloads


def agree(runner, model, x):
    with torch.no_grad():
        ref = model(x)
    got = runner.run([x])
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


CONFIGS = [
    dict(),
    dict(num_layers=2, batch_first=True),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, bias=False),
]


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU], ids=["lstm", "gru"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("placement", ["library", "tvm"])
def test_rnn_layers_match_pytorch(cell, config, placement):
    torch.manual_seed(0)
    model = Rnn(cell, **config)
    x = torch.randn(3, 5, 8)
    runner, offloads = build(model, x, placement)
    kind = "lstm" if cell is nn.LSTM else "gru"
    assert [o.kind for o in offloads] == ([kind] if placement == "library" else [])
    agree(runner, model, x)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU], ids=["lstm", "gru"])
def test_large_batches_take_the_blas_products_and_match(cell):
    """Over 256 rows the products go to MKL instead of the runtime's small-product kernel."""
    torch.manual_seed(5)
    model = Rnn(cell, batch_first=True)
    x = torch.randn(260, 2, 8)  # 260 rows per step, 520 for the input product
    runner, _ = build(model, x, "library")
    agree(runner, model, x)


def test_lstm_with_projection_matches_pytorch():
    torch.manual_seed(1)
    model = Rnn(nn.LSTM, num_layers=2, proj_size=5, batch_first=True)
    x = torch.randn(2, 6, 8)
    for placement in ("library", "tvm"):
        runner, _ = build(model, x, placement)
        agree(runner, model, x)


def test_symbolic_batch_runs_one_module_in_both_placements():
    """(torch.export fixes an LSTM's sequence length: its shape rules run the cells step by step.)"""
    torch.manual_seed(2)
    model = Rnn(nn.LSTM, num_layers=2, batch_first=True)
    batch = torch.export.Dim("batch", min=1, max=16)
    for placement in ("library", "tvm"):
        runner, offloads = build(model, torch.randn(2, 7, 8), placement, dynamic_shapes=({0: batch},))
        assert len(offloads) == (placement == "library")
        for n in (1, 5, 16):
            agree(runner, model, torch.randn(n, 7, 8))


def test_nan_propagates_as_in_pytorch():
    torch.manual_seed(3)
    model = Rnn(nn.GRU, batch_first=True)
    x = torch.randn(2, 4, 8)
    x[1, 2, 3] = float("nan")
    runner, _ = build(model, x, "library")
    got = runner.run([x])
    with torch.no_grad():
        ref = model(x)
    for g, r in zip(got, ref):
        assert torch.equal(g.isnan(), r.isnan()) and g.isnan().any()


class Tagger(nn.Module):
    """The bench's LSTM tagger shape: embedding, 2-layer LSTM, per-token linear head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True)
        self.head = nn.Linear(24, 6)

    def forward(self, ids):
        return self.head(self.lstm(self.emb(ids))[0])


def test_scripted_tagger_compiles_reports_and_loads_in_a_fresh_process(tmp_path):
    torch.manual_seed(4)
    path = str(tmp_path / "tagger.pt")
    torch.jit.save(torch.jit.script(Tagger().eval()), path)
    # (a scripted LSTM's TorchScript fixes the batch when converted: torch sizes its zero states from the input)
    spec = [{"name": "ids", "dims": [3, 10], "dtype": "int64", "range": [0, 50]}]
    params = {"model": path, "inputs": spec, "out_dir": str(tmp_path / "build"), "measure": False, "export_path": str(tmp_path / "tagger_tvm.pt")}
    result = compile_model(params, JobContext("test"))
    assert result["verification"]["ok"], result["verification"]
    ops = result["placement"]["ops"]
    heavy = [o for o in ops if o["kind"] != "take"]
    assert [o["kind"] for o in heavy] == ["lstm", "linear"] and all(o["where"] == "library" and o["ms"] > 0 for o in heavy)
    # The embedding's gather was timed as TVM's kernel and as PyTorch's index_select, and went where faster.
    (emb,) = [o for o in ops if o["kind"] == "take"]
    assert set(emb["alone_ms"]) >= {"library", "tvm"} and (emb["where"] == "library") == (emb["alone_ms"]["library"] < emb["alone_ms"]["tvm"] * measure.MARGIN)
    exported = result["files"]["exported"]
    proc = run_fresh(f"""
        import torch, torchtvm
        torch.manual_seed(0)
        m, ref = torch.jit.load({exported!r}), torch.jit.load({path!r})
        for _ in range(2):
            ids = torch.randint(0, 50, (3, 10))
            y = m(ids)
            torch.testing.assert_close(y, ref(ids), rtol=1e-4, atol=1e-5)
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
    assert os.path.getsize(exported) > 0


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_torchs_kernel_is_a_candidate_that_matches_and_wins_when_the_own_one_is_slow(cell):
    """Each LSTM / GRU call is timed as the runtime's recurrence and as torch's kernel; both give
    PyTorch's result, and the runtime's, made slower on purpose, loses the call to torch's."""
    import tvm_ffi

    from torchtvm.backend import measure

    torch.manual_seed(5)
    model, x = Rnn(cell, num_layers=2, bidirectional=True), torch.randn(7, 3, 8)
    mod = import_program(torch.export.export(model.eval(), (x,)), [x], 3 if cell is nn.LSTM else 2).mod
    for algorithm in ("", "torch"):
        placed, offloads = builder.place(mod, INFO, "library")
        ex = builder.compile_placed(library.use_algorithms(placed, offloads, {offloads[0].name: algorithm}), INFO)
        agree(TvmRunner(ex), model, x)
        assert offloads[0].algorithm == algorithm
    delay = tvm_ffi.get_global_func("torchtvm.debug_delay_kernel")
    placed, offloads = builder.place(mod, INFO, "auto")
    try:
        delay("recurrent", 3000)
        # 3 rounds: one call of torch's kernel preempted on a loaded machine (seen at 240 ms, a CI
        # run sharing its 2 cores) must not decide the low quantile
        timed = measure.time_library_calls(placed, offloads, rounds=3, calls=3)[offloads[0].name]
    finally:
        delay("recurrent", 0)
    assert timed.library_ms >= 3.0 and timed.others_ms["torch"] < 3.0 and timed.algorithm == "torch"
