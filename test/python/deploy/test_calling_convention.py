"""One calling convention for every export from the compile path (CLI and app): a drop-in
replacement for the model the user brought, with the model's own arguments and output structure.
The seed API's list convention (`m([x])` -> list) stays, and exports written in it keep loading."""

import os

import pytest
import torch
from _export_helpers import replace_pickled_str, rewrite_state, run_fresh
from torch import nn
from torchtvm.common import runtime_library as runtime
from torchtvm.common.progress import JobContext
from torchtvm.deploy import export
from torchtvm.pipeline.compile import compile_model


class One(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))


class Pair(nn.Module):
    def forward(self, left, right):
        s = left + right
        return s * 2, (s - 1, left.sum(1, keepdim=True))


class OddPair(nn.Module):
    """Pair with an op TVM's importer lacks (i1e): compiled with graph-level fallback."""

    def forward(self, left, right):
        s = torch.special.i1e(left) + right
        return s * 2, (s - 1, left.sum(1, keepdim=True))


class SiblingPair(nn.Module):
    """OddPair with an op that imports: compiled whole."""

    def forward(self, left, right):
        s = torch.exp(left) + right
        return s * 2, (s - 1, left.sum(1, keepdim=True))


BATCH = {"name": "batch", "min": 1, "max": 4}
ONE_SPECS = [{"name": "x", "dims": [BATCH, 4], "dtype": "float32"}]
# Spec names differ from the model's argument names on purpose: the export takes the model's.
PAIR_SPECS = [{"name": "a", "dims": [BATCH, 4], "dtype": "float32"}, {"name": "b", "dims": [BATCH, 4], "dtype": "float32"}]


def _compile(folder, name, module, specs, **extra):
    torch.manual_seed(0)
    ts = torch.jit.script(module.eval())
    model = os.path.join(folder, f"{name}.pt")
    ts.save(model)
    params = {"model": model, "inputs": specs, "out_dir": os.path.join(folder, f"build-{name}"), "threads": 1, "measure": False,
              "edge_values": False, "export_path": os.path.join(folder, f"{name}_tvm.pt"), **extra}
    return ts, compile_model(params, JobContext("test"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache = {}
    factories = {"one": (One, ONE_SPECS), "pair": (Pair, PAIR_SPECS), "odd_pair": (OddPair, PAIR_SPECS), "sibling_pair": (SiblingPair, PAIR_SPECS)}

    def get(name):
        if name not in cache:
            factory, specs = factories[name]
            cache[name] = _compile(str(tmp_path_factory.mktemp(name)), name, factory(), specs)
        return cache[name]

    return get


def _same(got, want):
    """Same structure (tensor / tuple / list, nested) and values."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, torch.Tensor):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    else:
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w)


def test_single_input_single_output_returns_a_tensor(compiled):
    ts, r = compiled("one")
    m = torch.jit.load(r["files"]["exported"])
    for batch in (1, 3):
        x = torch.randn(batch, 4)
        y = m(x)
        assert isinstance(y, torch.Tensor)
        _same(y, ts(x))
    meta = runtime.exported_metadata(m)
    assert meta["calling_convention"] == "model" and meta["arguments"] == ["x"] and meta["output_structure"] == 0
    assert meta["format_version"] == export.FORMAT_VERSION == 2
    with pytest.raises(RuntimeError):
        m([x])  # the list form is the seed API's, not this export's
    # in Python, before scripting, a wrong argument is a sentence naming it
    sig = {"arguments": ["x"], "outputs": 0}
    py = export.exported_module(r["files"]["library"], r["target"], r["inputs"], r["num_outputs"], signature=sig)
    _same(py(x), ts(x))
    with pytest.raises(TypeError, match="Argument x is a NoneType, not a tensor"):
        py(None)


def test_two_inputs_and_a_nested_tuple_come_back_in_the_models_structure(compiled):
    ts, r = compiled("pair")
    m = torch.jit.load(r["files"]["exported"])
    left, right = torch.randn(2, 4), torch.randn(2, 4)
    _same(m(left, right), ts(left, right))
    _same(m(left, right=right), ts(left, right))  # the model's own argument names, not the specs'
    assert [a.name for a in m.forward.schema.arguments[1:]] == ["left", "right"]
    assert str(m.forward.schema.returns[0].type) == str(ts.forward.schema.returns[0].type) == "Tuple[Tensor, Tuple[Tensor, Tensor]]"
    meta = runtime.exported_metadata(m)
    assert meta["output_structure"] == {"tuple": [0, {"tuple": [1, 2]}]} and meta["num_outputs"] == 3


def test_export_composes_inside_a_bigger_module(compiled, tmp_path):
    ts, r = compiled("pair")

    class Outer(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            a, (b, c) = self.inner(x, x * 0.5)
            return a + b + c

    outer = torch.jit.script(Outer(torch.jit.load(r["files"]["exported"])))
    path = str(tmp_path / "outer.pt")
    outer.save(path)
    x = torch.randn(3, 4)
    a, (b, c) = ts(x, x * 0.5)
    torch.testing.assert_close(torch.jit.load(path)(x), a + b + c, atol=1e-5, rtol=1e-5)


def test_list_convention_exports_keep_loading(compiled, tmp_path):
    """The seed API's TVMModule, written as every export before the key existed (no
    calling_convention in its metadata), loads and runs with m([x]) in a fresh process."""
    ts, r = compiled("one")
    seed = export.exported_module(r["files"]["library"], r["target"], r["inputs"], r["num_outputs"])
    assert type(seed) is export.TVMModule and seed.metadata()["calling_convention"] == "list"
    new = str(tmp_path / "list.pt")
    export.save_scripted(torch.jit.script(seed), new)
    old = str(tmp_path / "old.pt")
    def as_written_then(d: bytes) -> bytes:  # format version 1: no calling_convention, no digest
        import re

        d = replace_pickled_str(d, b', "calling_convention": "list"', b"")
        d = replace_pickled_str(d, b'"format_version": 2', b'"format_version": 1')
        return replace_pickled_str(d, re.search(rb', "integrity_sha256": "[0-9a-f]{64}"', d).group(0), b"")

    rewrite_state(new, old, as_written_then)
    x = torch.randn(2, 4)
    io = str(tmp_path / "io.pt")
    torch.save({"x": x, "want": ts(x)}, io)
    proc = run_fresh(f"""
        import torch, torchtvm
        from torchtvm.common import runtime_library as runtime
        d = torch.load({io!r})
        m = torch.jit.load({old!r})
        assert "calling_convention" not in runtime.exported_metadata(m)
        (y,) = m([d["x"]])
        assert torch.allclose(y, d["want"], atol=1e-5), (y - d["want"]).abs().max()
        print("OK")
    """)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_fallback_and_whole_exports_are_called_the_same_way(compiled):
    odd_ts, odd = compiled("odd_pair")
    sib_ts, sib = compiled("sibling_pair")
    assert "fallback" in odd and odd["coverage"].get("level", "graph") == "graph"
    assert "fallback" not in sib
    left, right = torch.rand(2, 4), torch.randn(2, 4)
    for ts, r in ((odd_ts, odd), (sib_ts, sib)):
        m = torch.jit.load(r["files"]["exported"])
        assert [a.name for a in m.forward.schema.arguments[1:]] == ["left", "right"]
        assert str(m.forward.schema.returns[0].type) == "Tuple[Tensor, Tuple[Tensor, Tensor]]"
        _same(m(left, right=right), ts(left, right))


def test_exported_program_takes_its_user_input_names(tmp_path):
    class Prog(nn.Module):
        def forward(self, image, mask):
            return [image * mask, image + mask]

    ep = torch.export.export(Prog(), (torch.randn(2, 3), torch.randn(2, 3)))
    model = str(tmp_path / "prog.pt2")
    torch.export.save(ep, model)
    params = {"model": model, "out_dir": str(tmp_path / "build"), "threads": 1, "measure": False, "edge_values": False, "export_path": str(tmp_path / "prog_tvm.pt")}
    r = compile_model(params, JobContext("test"))
    m = torch.jit.load(r["files"]["exported"])
    image, mask = torch.randn(2, 3), torch.randn(2, 3)
    _same(m(image=image, mask=mask), Prog()(image, mask))


def test_output_structure_and_wrapper_types():
    from torchtvm.common.errors import EngineError
    from torchtvm.verify.reference import output_structure

    t = torch.zeros(1)
    assert output_structure(t) == 0
    assert output_structure((t,)) == {"tuple": [0]}
    assert output_structure([t, (t, [t])]) == {"list": [0, {"tuple": [1, {"list": [2]}]}]}
    with pytest.raises(EngineError, match="returns a dict"):
        output_structure({"y": t})
    assert export._structure_type({"tuple": [0]}) == "Tuple[Tensor]"
    assert export._structure_type({"list": [0, 1]}) == "List[Tensor]"
    # a list of mixed element types has no TorchScript type: it comes back as a tuple
    assert export._structure_type({"list": [0, {"tuple": [1]}]}) == "Tuple[Tensor, Tuple[Tensor]]"
    assert export._structure_expr({"tuple": [0]}, "o") == "(o[0],)"
