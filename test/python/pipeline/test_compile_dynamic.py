"""Symbolic dimensions and control flow: one compiled module serves every size in a range.

Symbolic batch / sequence models are compiled once (module-scoped), checked by the engine at the
range ends and inside, then exported and loaded in a fresh process that calls the .pt at several
sizes and is refused, with a sentence, outside the range."""

import json
import os

import pytest
import torch
import torch.nn as nn

from _export_helpers import SmallConv, run_fresh
from torchtvm.common.progress import JobContext
from torchtvm.common.options import CompileOptions
from torchtvm.pipeline.compile import compile_model, compile_run
from torchtvm.verify.checks import verification_shapes
from torchtvm.common.specs import parse_specs


class Encoder(nn.Module):
    """Token ids [batch, seq] -> per-token softmax over the sequence."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1000, 16)
        self.fc = nn.Linear(16, 8)

    def forward(self, ids):
        return torch.relu(self.fc(self.emb(ids))).softmax(1)


class TokenMixer(nn.Module):
    """Tokens [batch, seq, 32] flattened by a size the trace computes (x.size(0) * seq, as
    nn.MultiheadAttention's fast path does), a linear layer, and back."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)

    def forward(self, x):
        b, s, d = x.size()
        return self.fc(x.reshape(b * s, d)).view(b, s, d) + x


BATCH = {"name": "batch", "min": 1, "max": 4}
SEQ = {"name": "seq", "min": 1, "max": 64}

CASES = {
    "batch_seq": (Encoder, (torch.randint(0, 1000, (2, 5)),), [{"name": "ids", "dims": [BATCH, SEQ], "dtype": "int64", "range": [0, 1000]}]),
    "batch_view": (TokenMixer, (torch.randn(2, 16, 32),), [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 8}, 16, 32], "dtype": "float32"}]),
    "batch_conv": (SmallConv, (torch.randn(2, 3, 8, 8),), [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 16}, 3, 8, 8], "dtype": "float32"}]),
}


def _compile(name, folder):
    factory, example, specs = CASES[name]
    torch.manual_seed(0)
    model = os.path.join(folder, f"{name}.pt")
    torch.jit.trace(factory().eval(), example).save(model)
    params = {"model": model, "inputs": specs, "out_dir": os.path.join(folder, "build"), "threads": 2, "measure": False,
              "export_path": os.path.join(folder, f"{name}_tvm.pt")}
    result = compile_model(params, JobContext("test"))
    return model, result


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _compile(name, str(tmp_path_factory.mktemp(name)))
        return cache[name]

    return get


def test_verification_shapes_cover_range_ends_and_inside():
    specs = parse_specs([{"name": "ids", "dims": [BATCH, SEQ], "dtype": "int64"}, {"name": "mask", "dims": [BATCH, SEQ, 2], "dtype": "bool"}])
    sets = verification_shapes(specs)
    assert [(1, 1), (1, 1, 2)] in sets and [(4, 64), (4, 64, 2)] in sets
    assert any(1 < s[0][0] < 4 and 1 < s[0][1] < 64 for s in sets)  # a size inside the range
    assert all(s[0][:2] == s[1][:2] for s in sets)  # one value per symbol across inputs
    assert verification_shapes(parse_specs([{"name": "x", "dims": [2, 3]}])) is None


def test_huge_upper_bound_is_checked_at_a_size_that_fits():
    sets = verification_shapes(parse_specs([{"name": "x", "dims": ["batch", 3, 224, 224]}]))  # batch 1..4096
    assert max(s[0][0] for s in sets) < 4096 and min(s[0][0] for s in sets) == 1


@pytest.mark.parametrize("name", list(CASES))
def test_one_module_verified_at_several_sizes(compiled, name):
    _model, result = compiled(name)
    ver = result["verification"]
    assert ver["ok"], ver
    shapes = [c["input_shapes"][0] for c in ver["checks"]]
    spec_dims = CASES[name][2][0]["dims"]
    for j, d in enumerate(spec_dims):
        if isinstance(d, dict):
            seen = {s[j] for s in shapes}
            assert d["min"] in seen and d["max"] in seen and any(d["min"] < v < d["max"] for v in seen), (j, seen)
    assert result["inputs"][0]["dims"] == spec_dims


def test_sizes_computed_from_the_batch_stay_the_batch_and_are_timed(compiled):
    """A size the trace computes on tensors (b * s) is the batch's expression, not a new unknown:
    the linear layer's output reads [batch, 16, 32], and placement times its algorithms (at the
    batch's sample size) as it would in a static build, instead of running an unmeasured default."""
    _model, result = compiled("batch_view")
    linear = [o for o in result["placement"]["ops"] if o["kind"] == "linear"]
    assert len(linear) == 1, result["placement"]["ops"]
    assert linear[0]["shape"][:2] == ["batch", 16], linear[0]
    assert len(linear[0].get("alone_ms", {})) >= 2, linear[0]
    assert "timed every way" in result["placement"]["note"], result["placement"]["note"]


@pytest.mark.parametrize("name", list(CASES))
def test_exported_module_serves_the_range_in_a_fresh_process(compiled, tmp_path, name):
    model, result = compiled(name)
    pt = result["files"]["exported"]
    spec = CASES[name][2][0]
    syms = [d for d in spec["dims"] if isinstance(d, dict)]

    def shape(values):
        it = iter(values)
        return [next(it) if isinstance(d, dict) else d for d in spec["dims"]]

    inside = [shape([d["min"] for d in syms]), shape([d["max"] for d in syms]), shape([(d["min"] + d["max"]) // 2 + 1 for d in syms])]
    outside = [shape([d["max"] + 1 for d in syms])]
    io = str(tmp_path / "io.json")
    with open(io, "w") as f:
        json.dump({"inside": inside, "outside": outside, "int": spec["dtype"] == "int64"}, f)
    proc = run_fresh(f"""
        import json, torch, torchtvm
        cfg = json.load(open({io!r}))
        tvm_m = torch.jit.load({pt!r})
        ref = torch.jit.load({model!r})
        torch.manual_seed(3)
        make = (lambda s: torch.randint(0, 1000, s)) if cfg["int"] else (lambda s: torch.randn(s))
        for s in cfg["inside"]:
            x = make(s)
            got, want = tvm_m(x), ref(x)
            assert got.shape == want.shape, (got.shape, want.shape)
            err = (got - want).abs().max().item()
            assert err < 1e-4, (s, err)
            print("OK", s, err)
        for s in cfg["outside"]:
            try:
                tvm_m(make(s))
            except RuntimeError as e:
                print("REFUSED", [l for l in str(e).splitlines() if "TVM module expects" in l][-1])
            else:
                print("ACCEPTED", s)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert sum(l.startswith("OK") for l in lines) == 3, proc.stdout
    refused = [l for l in lines if l.startswith("REFUSED")]
    assert len(refused) == 1, proc.stdout
    d = syms[0]
    assert f"must be in {d['min']}..{d['max']}, got {d['max'] + 1}" in refused[0] and d["name"] in refused[0]


class DataDependentIf(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:
            return torch.relu(self.fc(x)) * 2
        else:
            return torch.tanh(self.fc(x)) - 1


def test_data_dependent_if_becomes_one_module_with_both_branches(tmp_path):
    """torch.jit.script keeps the `if`; it arrives in TVM as relax.If and both branches run."""
    from torchtvm.backend.executor import TvmRunner

    torch.manual_seed(0)
    model = str(tmp_path / "if.pt")
    torch.jit.script(DataDependentIf().eval()).save(model)
    specs = [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 8}, 8], "dtype": "float32"}]
    run = compile_run(CompileOptions.from_params({"model": model, "inputs": specs, "out_dir": str(tmp_path / "b"), "threads": 2, "measure": False,
                                                  "export_path": str(tmp_path / "if_tvm.pt")}), JobContext("t"))
    r = run.result
    assert r["verification"]["ok"] and "fallback" not in r
    runner = TvmRunner(run.built.executable)
    ref = torch.jit.load(model)
    x = torch.rand(3, 8) + 0.1
    for inp in (x, -x):  # sum > 0, then sum < 0
        want = ref(inp)
        got = runner.run([inp])[0]
        assert torch.allclose(got, want, atol=1e-5), (inp.sum(), (got - want).abs().max())
    assert bool((ref(x) >= 0).all()) and bool((ref(-x) < 0).all())  # the two branches differ
    exported = torch.jit.load(r["files"]["exported"])
    for inp in (x, -x):
        assert torch.allclose(exported(inp), ref(inp), atol=1e-5)
