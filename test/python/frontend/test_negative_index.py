"""Negative indices (`x[:, -1]`, `x[-1]`, `torch.select(x, 1, -1)`, `x[:, [-1, 0]]`, ...).

TVM imports `aten.select.int` and a one-tensor `aten.index.Tensor` as `take`, which runs in "fast"
mode and reads before the tensor on a negative index (garbage, different on every run); the
engine's decompositions (frontend/decompositions.py) make each negative index `index + size`
first, with the symbolic size where the dim has one. Each form is compiled through the whole
pipeline, must pass the engine's verification (at the ends of a symbolic range too) without
falling back to PyTorch, and the built module must match the model on fresh inputs."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from torchtvm.common.options import CompileOptions
from torchtvm.common.progress import JobContext
from torchtvm.common.specs import parse_specs
from torchtvm.frontend.importer import import_torchscript
from torchtvm.pipeline.compile import compile_run


def _setitem(x):
    y = x * 1
    y[:, -1] = 0
    return y


def _index_put(x):
    y = x * 1
    y[torch.tensor([-1, 0]), torch.tensor([-2, 1]), torch.tensor([-1, 3])] = 3.0
    return y


# name -> (forward, smallest seq the form is valid for under torch.export; None: static only)
FORMS = {
    "x[:, -1]": (lambda x: x[:, -1] * 2, 2),
    "x[..., -1]": (lambda x: x[..., -1] * 2, 2),
    "x[-1]": (lambda x: x[-1] * 2, 2),
    "x[:, -2]": (lambda x: x[:, -2] * 2, 2),
    "select(x, 1, -1)": (lambda x: torch.select(x, 1, -1) * 2, 2),
    "select(x, -2, -1)": (lambda x: torch.select(x, -2, -1) * 2, 2),
    # torch.export specialises a slice from the end at a size that the slice clamps, so these
    # need a range starting past it.
    "narrow(1, -3, 2)": (lambda x: x.narrow(1, -3, 2) * 2, 4),
    "x[:, -3:]": (lambda x: x[:, -3:] * 2, 4),
    "x[:, -4:-1]": (lambda x: x[:, -4:-1] * 2, 5),
    "x[:, [-1, 0]]": (lambda x: x[:, [-1, 0]] * 2, 2),
    "x[[-1, 0], [-2, 1]]": (lambda x: x[torch.tensor([-1, 0]), torch.tensor([-2, 1])] * 2, None),
    "take(x, [-1, 3, -7])": (lambda x: torch.take(x, torch.tensor([-1, 3, -7])) * 2, None),
    "y[:, -1] = 0": (_setitem, 2),
    "index_put negative": (_index_put, None),
}


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class LastStep(nn.Module):
    """An LSTM tagger reading its last step, as sequence classifiers do."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 12, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class IndexInput(nn.Module):
    """Indices that arrive at run time, negative ones included."""

    def forward(self, x, i):
        return x[:, i] * 2


SEQ_MAX = 16


def _compile(tmp_path, model, specs):
    path = str(tmp_path / "m.pt")
    model.save(path)
    options = CompileOptions.from_params({"model": path, "inputs": specs, "out_dir": str(tmp_path / "build"), "threads": 1, "measure": False})
    run = compile_run(options, JobContext("test"))
    result = run.result
    assert "fallback" not in result, result.get("fallback")
    assert result["verification"]["ok"], result["verification"]
    return run


def _agree(run, model, inputs):
    want = model(*inputs)
    got = run.built.runner.run(list(inputs))[0]
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("name", list(FORMS))
def test_static_shape(tmp_path, name):
    torch.manual_seed(0)
    model = torch.jit.trace(Fn(FORMS[name][0]).eval(), torch.randn(2, 5, 8))
    run = _compile(tmp_path, model, [{"name": "x", "dims": [2, 5, 8], "dtype": "float32"}])
    for seed in range(3):
        torch.manual_seed(seed)
        _agree(run, model, [torch.randn(2, 5, 8)])


@pytest.mark.parametrize("name", [n for n, (_, lo) in FORMS.items() if lo is not None])
def test_symbolic_dim_on_the_indexed_axis(tmp_path, name):
    """The index counts from the end of each size: seq - 1, not the sample's 4."""
    fn, lo = FORMS[name]
    torch.manual_seed(0)
    model = torch.jit.trace(Fn(fn).eval(), torch.randn(2, 5, 8))
    run = _compile(tmp_path, model, [{"name": "x", "dims": [2, {"name": "seq", "min": lo, "max": SEQ_MAX}, 8], "dtype": "float32"}])
    checked = {c["input_shapes"][0][1] for c in run.result["verification"]["checks"]}
    assert {lo, SEQ_MAX} <= checked, checked  # the engine verified both ends of the range
    for seq in (lo, lo + 3, SEQ_MAX):
        _agree(run, model, [torch.randn(2, seq, 8)])


@pytest.mark.parametrize("symbolic", [False, True], ids=["static", "symbolic_batch"])
def test_lstm_last_step(tmp_path, symbolic):
    """(torch.export fixes an LSTM's sequence length, so the symbolic case is the batch.)"""
    torch.manual_seed(0)
    model = torch.jit.trace(LastStep().eval(), torch.randn(2, 5, 8))
    batch = {"name": "batch", "min": 1, "max": 8} if symbolic else 2
    run = _compile(tmp_path, model, [{"name": "x", "dims": [batch, 5, 8], "dtype": "float32"}])
    for n in ((1, 3, 8) if symbolic else (2, 2)):
        _agree(run, model, [torch.randn(n, 5, 8)])


def test_run_time_indices(tmp_path):
    torch.manual_seed(0)
    model = torch.jit.trace(IndexInput().eval(), (torch.randn(2, 5, 8), torch.tensor([-1, 2, -5])))
    run = _compile(tmp_path, model, [{"name": "x", "dims": [2, 5, 8], "dtype": "float32"},
                                     {"name": "i", "dims": [3], "dtype": "int64", "range": [-5, 5]}])
    for i in ([-1, -5, 4], [0, -2, -3], [4, 3, -1]):
        _agree(run, model, [torch.randn(2, 5, 8), torch.tensor(i)])


def test_no_negative_literal_reaches_take():
    """The import itself: select with a negative index gives take of index + size, or of an index
    computed from the symbolic size, never take(x, -1)."""
    model = torch.jit.trace(Fn(lambda x: x[:, -1] + x[-1, -2]).eval(), torch.randn(3, 5, 8))
    for dims in ([3, 5, 8], [3, {"name": "seq", "min": 2, "max": SEQ_MAX}, 8]):
        text = import_torchscript(model, parse_specs([{"name": "x", "dims": dims, "dtype": "float32"}])).mod.script()
        takes = [line for line in text.splitlines() if "R.take(" in line]
        assert takes, text
        assert not any(re.search(r"R\.const\(-\d+", line) for line in takes), takes


def test_upsample_indices_are_not_rewritten():
    """torch's own `_unsafe_index` (upsample_*, padding) indexes in range: no extra where()."""
    # (1-d: TVM imports upsample_nearest2d whole, torch decomposes the 1-d one into an index)
    model = torch.jit.trace(Fn(lambda x: nn.functional.interpolate(x, scale_factor=2, mode="nearest")).eval(), torch.randn(1, 2, 4))
    program = import_torchscript(model, parse_specs([{"name": "x", "dims": [1, 2, 4], "dtype": "float32"}])).program
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.index.Tensor in targets and torch.ops.aten.where.self not in targets, targets
