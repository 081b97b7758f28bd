"""Module-level fallback: loops and unsupported ops stay in TorchScript, submodules run with TVM.

Each model is compiled once (module-scoped). The rewritten model is checked against the original
in this process, exported, and reloaded in a fresh process that imports only torch and torchtvm."""

import json
import os
import re

import pytest
import torch
import torch.nn as nn

from _export_helpers import run_fresh
from torchtvm.common.errors import EngineError
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model


class Cell(nn.Module):
    def __init__(self):
        super().__init__()
        self.ih = nn.Linear(8, 16)
        self.hh = nn.Linear(16, 16)

    def forward(self, x, h):
        return torch.tanh(self.ih(x) + self.hh(h))


class ShapeLoop(nn.Module):
    """RNN: the loop's trip count is the input's sequence length."""

    def __init__(self):
        super().__init__()
        self.cell = Cell()
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.zeros(x.size(0), 16)
        for t in range(x.size(1)):
            h = self.cell(x[:, t], h)
        return self.head(h)


class Step(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return 0.5 * torch.tanh(self.fc(x))


class ValueLoop(nn.Module):
    """Iterate until the values are small: the trip count comes from the data."""

    def __init__(self):
        super().__init__()
        self.step = Step()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        y = self.proj(x)
        i = 0
        while bool(y.abs().max() > 0.05) and i < 100:
            y = self.step(y)
            i += 1
        return y, torch.full([1], float(i))


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Linear(8, 16)
        self.post = nn.Linear(16, 8)

    def forward(self, x):
        return self.post(torch.special.i1e(torch.relu(self.pre(x))))  # i1e: TVM's importer lacks it


class Partial(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.odd = Odd()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.odd(self.stem(x)) + x)


BATCH = {"name": "batch", "min": 1, "max": 4}

CASES = {
    # name: (factory, how to make TorchScript, spec dims, call shapes for the round trip)
    "shape_loop": (ShapeLoop, "script", [BATCH, {"name": "seq", "min": 1, "max": 12}, 8], [(1, 1, 8), (4, 12, 8), (3, 5, 8)]),
    "value_loop": (ValueLoop, "script", [BATCH, 8], [(1, 8), (4, 8), (2, 8)]),
    "partial": (Partial, "trace", [BATCH, 8], [(1, 8), (4, 8), (3, 8)]),
}


def _compile(name, folder, **extra):
    factory, how, dims, _calls = CASES[name]
    torch.manual_seed(0)
    m = factory().eval()
    ts = torch.jit.script(m) if how == "script" else torch.jit.trace(m, (torch.randn(2, 8),))
    model = os.path.join(folder, f"{name}.pt")
    ts.save(model)
    params = {"model": model, "inputs": [{"name": "x", "dims": dims, "dtype": "float32"}], "out_dir": os.path.join(folder, "build"),
              "threads": 2, "measure": False, "export_path": os.path.join(folder, f"{name}_tvm.pt"), "fallback_level": "module", **extra}
    return model, compile_model(params, JobContext("test"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _compile(name, str(tmp_path_factory.mktemp(name)))
        return cache[name]

    return get


def _modules(result):
    return {m["name"]: m for m in result["coverage"]["modules"]}


def test_strict_fails_naming_the_construct_and_how_fallback_would_help(tmp_path):
    torch.jit.script(ShapeLoop().eval()).save(str(tmp_path / "m.pt"))
    with pytest.raises(EngineError) as e:
        compile_model({"model": str(tmp_path / "m.pt"), "inputs": [{"name": "x", "dims": [2, 3, 8]}], "out_dir": str(tmp_path / "b"), "measure": False, "strict": True}, JobContext("t"))
    assert e.value.code == "import_failed" and "prim::Loop" in e.value.message and "--strict" in e.value.message


def test_shape_driven_loop_compiles_the_cell_and_keeps_the_loop(compiled):
    _model, r = compiled("shape_loop")
    assert r["verification"]["ok"], r["verification"]
    assert r["fallback"]["code"] == "import_failed" and "prim::Loop" in r["fallback"]["reason"]
    mods = _modules(r)
    assert mods["cell"]["compiled"] and mods["head"]["compiled"], mods
    # the cell's batch follows the user's symbol; its other dims are fixed
    assert mods["cell"]["inputs"][0]["dims"] == [BATCH, 8] and mods["cell"]["inputs"][1]["dims"] == [BATCH, 16]
    code = torch.jit.load(r["files"]["partitioned"]).code
    assert "for t in range" in code and "torchtvm_cell" in code and "torchtvm_head" in code


def test_value_driven_loop(compiled):
    _model, r = compiled("value_loop")
    assert r["verification"]["ok"], r["verification"]
    mods = _modules(r)
    assert mods["step"]["compiled"] and mods["proj"]["compiled"]
    code = torch.jit.load(r["files"]["partitioned"]).code
    assert "while" in code or "for " in code


def test_partial_compilation_names_what_stays_in_torchscript(compiled):
    _model, r = compiled("partial")
    assert r["verification"]["ok"], r["verification"]
    assert r["fallback"]["code"] == "unsupported_op" and "special_i1e" in r["fallback"]["reason"]
    mods = _modules(r)
    assert mods["odd"]["compiled"] is False and "special_i1e" in mods["odd"]["reason"]
    assert mods["odd"].get("searched_children")  # its own children were compiled instead
    for name in ("stem", "head", "odd.pre", "odd.post"):
        assert mods[name]["compiled"], mods[name]


@pytest.mark.parametrize("name", list(CASES))
def test_coverage_numbers_are_sane(compiled, name):
    _model, r = compiled(name)
    cov = r["coverage"]
    assert 0 < cov["ops_compiled"] < cov["ops_total"] or (name != "partial" and 0 < cov["ops_compiled"] <= cov["ops_total"])
    assert 0.0 < cov["time_share_compiled"] <= 1.0
    if name == "partial":  # i1e, relu, the residual add and the glue stay in TorchScript
        assert cov["ops_compiled"] < cov["ops_total"]


@pytest.mark.parametrize("name", list(CASES))
def test_exported_partitioned_model_in_a_fresh_process(compiled, tmp_path, name):
    model, r = compiled(name)
    pt = r["files"]["exported"]
    shapes = CASES[name][3]
    io_path = str(tmp_path / "io.pt")
    torch.manual_seed(5)
    inputs = [torch.randn(s) for s in shapes]
    ref = torch.jit.load(model)
    expected = []
    for x in inputs:
        out = ref(x)
        expected.append(list(out) if isinstance(out, tuple) else [out])
    torch.save({"inputs": inputs, "expected": expected}, io_path)
    proc = run_fresh(f"""
        import torch, torchtvm
        d = torch.load({io_path!r})
        m = torch.jit.load({pt!r})
        for x, want in zip(d["inputs"], d["expected"]):
            out = m(x)
            got = list(out) if isinstance(out, tuple) else [out]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape and torch.allclose(g, w, atol=1e-4, rtol=1e-3), (x.shape, (g - w).abs().max())
            print("OK", list(x.shape))
        print("CLASSES", "torchtvm_" in m.code)
        md = torchtvm.common.runtime_library.exported_metadata(m)
        print("PARTS", md["compiled"], len(md["parts"]), all(p["num_outputs"] >= 1 for p in md["parts"].values()))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("OK") == len(shapes) and "CLASSES True" in proc.stdout, proc.stdout
    assert re.search(r"PARTS partial [1-9]\d* True", proc.stdout), proc.stdout
