"""Deployable .pt: export, then load in a fresh process with nothing but the .pt and the runtime.

Each model is compiled once (module-scoped); its build folder is deleted before the round trip, so
the .pt must carry the compiled code itself."""

import json
import os

import pytest
import torch

from _export_helpers import MODELS, compile_and_export, rmtree, run_fresh, runtime_lib


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            folder = str(tmp_path_factory.mktemp(name))
            result = compile_and_export(name, folder)
            rmtree(os.path.join(folder, "build"))  # the compiled library must live inside the .pt
            cache[name] = (folder, result)
        return cache[name]

    return get


CALL_SHAPES = {"multi_input": [[(1, 4), (1, 3)], [(5, 4), (5, 3)]]}


def _reference_inputs(name):
    _factory, example, _specs = MODELS[name]
    torch.manual_seed(1)
    ex = example()
    sets = []
    for shapes in CALL_SHAPES.get(name, [[tuple(t.shape) for t in ex]]):
        sets.append([(torch.randint(0, 100, s) if t.dtype == torch.int64 else torch.randn(s).to(t.dtype)) for s, t in zip(shapes, ex)])
    return sets


@pytest.mark.parametrize("loader", ["import torchtvm", "load_library"])
@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_in_fresh_process(exported, tmp_path, name, loader):
    folder, result = exported(name)
    pt = result["files"]["exported"]
    assert os.path.isfile(pt) and not os.path.exists(os.path.join(folder, "build"))
    original = torch.jit.load(os.path.join(folder, f"{name}.pt"))
    sets = _reference_inputs(name)
    expected = []
    for inputs in sets:
        out = original(*inputs)
        expected.append(list(out) if isinstance(out, (tuple, list)) else [out])
    io_path = str(tmp_path / "io.pt")
    torch.save({"sets": sets}, io_path)
    load = "import torchtvm" if loader == "import torchtvm" else f"torch.ops.load_library({runtime_lib()!r})"
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    proc = run_fresh(f"""
        import sys, torch
        {load}
        assert "tvm" not in sys.modules or {loader!r} == "import torchtvm"
        m = torch.jit.load({pt!r})
        sets = torch.load({io_path!r})["sets"]
        outs = [m(*inputs) for inputs in sets]   # the model's own arguments
        outs = [list(o) if isinstance(o, tuple) else [o] for o in outs]
        torch.save(outs, {str(tmp_path / 'out.pt')!r})
        print("ok")
    """, env_extra={"TMPDIR": str(tmpdir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the library bytes went to a private temp file that was removed after loading
    assert os.listdir(tmpdir) == []
    got = torch.load(str(tmp_path / "out.pt"))
    tol = 1e-2 if name == "float16" else 1e-4
    for g_set, e_set in zip(got, expected):
        assert len(g_set) == len(e_set) == result["num_outputs"]
        for g, e in zip(g_set, e_set):
            assert g.shape == e.shape and g.dtype == e.dtype
            torch.testing.assert_close(g, e, atol=tol, rtol=tol)


def test_metadata_is_embedded_and_inspectable(exported):
    from torchtvm.common import runtime_library as runtime
    from torchtvm.frontend.inspection import inspect_file

    folder, result = exported("multi_input")
    m = torch.jit.load(result["files"]["exported"])
    meta = runtime.exported_metadata(m)
    assert meta["format_version"] == 2
    assert meta["num_outputs"] == 1
    assert meta["inputs"][0]["dims"][0] == {"name": "batch", "min": 1, "max": 8}
    assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["tvm"]
    assert meta["target"]["kind"] == "llvm" and isinstance(meta["cpu_features"], list)
    assert len(meta["library_sha256"]) == 64
    assert inspect_file(result["files"]["exported"])["exported"]["library_sha256"] == meta["library_sha256"]
    assert runtime.exported_metadata(torch.jit.load(os.path.join(folder, "multi_input.pt"))) is None


def test_wrong_inputs_at_call_are_torchscript_errors(exported):
    _folder, result = exported("multi_input")
    m = torch.jit.load(result["files"]["exported"])
    # a missing argument is refused by the forward's own schema (the model's arguments: a, b) ...
    with pytest.raises(RuntimeError, match="missing value for argument 'b'"):
        m(torch.randn(2, 4))
    # ... and by the runtime object underneath, with the inputs it expects
    with pytest.raises(RuntimeError, match=r"expects 2 input\(s\) \(a \[batch, 4\] float32, b \[batch, 3\] float32\) but was given 1"):
        m.torchtvm_module.forward([torch.randn(2, 4)])
    cases = [
        ([torch.randn(2, 4), torch.randn(2, 3).double()], "Input b should have dtype float32 but was given float64"),
        ([torch.randn(2, 5), torch.randn(2, 3)], "dimension 1 must be 4, got 5"),
        ([torch.randn(9, 4), torch.randn(9, 3)], "dimension 0 (batch) must be in 1..8, got 9"),
        ([torch.randn(2, 4), torch.randn(3, 3)], "batch is 2 in an earlier dimension but 3 here"),
        ([torch.randn(2, 4, 1), torch.randn(2, 3)], "expected 2 dimensions, got 3"),
    ]
    for inputs, needle in cases:
        with pytest.raises(RuntimeError) as e:
            m(*inputs)
        assert "TorchScript interpreter" in str(e.value) and needle in str(e.value)
    # still usable afterwards
    assert m(torch.randn(3, 4), torch.randn(3, 3)).shape == (3, 4)


def test_zero_copy(exported):
    _folder, result = exported("multi_input")
    m = torch.jit.load(result["files"]["exported"])
    obj = m.torchtvm_module
    a, b = torch.randn(4, 4), torch.randn(4, 3)
    assert a.data_ptr() % 64 == 0 and b.data_ptr() % 64 == 0
    before = obj.copies()
    out = m(a, b)
    # contiguous aligned inputs: no copy; the output tensor is TVM's own buffer (no memcpy)
    assert obj.copies() == before
    assert [out.data_ptr()] == obj.last_output_ptrs()
    # a transposed view and a misaligned slice are copied into aligned, dense tensors
    at = torch.randn(4, 4).t()
    big = torch.randn(5, 3)
    bs = big[1:]
    assert bs.is_contiguous() and bs.data_ptr() % 64 != 0
    out = m(at, bs)
    assert obj.copies() == before + 2
    torch.testing.assert_close(out, at * 2 + bs.sum(1, keepdim=True))
    # outputs stay valid after more calls (each call gets its own buffers)
    first = m(a, b).clone()
    keep = m(a, b)
    m(at, bs)
    torch.testing.assert_close(keep, first)


def test_export_metadata_round_trips_through_json(exported):
    _folder, result = exported("int64")
    m = torch.jit.load(result["files"]["exported"])
    meta = json.loads(m.torchtvm_module.metadata())
    assert meta["inputs"][0]["dtype"] == "int64" and meta["library_bytes"] > 0
