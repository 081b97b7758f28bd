"""The engine frontend: torch.export `.pt2` files (load, inspect, default specs, AOTInductor
refusal, seed API), shape arithmetic in traced and scripted graphs (static and symbolic),
decompositions, strict mode, and tuning a model with a symbolic dim."""

from __future__ import annotations

import math
import os
import warnings
import zipfile

import pytest
import torch
from torch import nn

import torchtvm
from torchtvm.common.errors import EngineError
from torchtvm.frontend.inspection import inspect_file
from torchtvm.common.progress import JobContext
from torchtvm.frontend.loader import load_model
from torchtvm.pipeline.compile import compile_model


class ShapeMath(nn.Module):
    """Every kind of shape arithmetic a trace records on 0-d int tensors."""

    def forward(self, x):
        b, s, d = x.size()
        scale = (torch.tensor(d) // 4) ** 0.5  # HF-style attention scale: floor_divide, pow
        n = x.numel() // (b * s)  # numel
        y = x / scale + x * (s ** 0.5) / n
        y = y / torch.sqrt(torch.tensor(float(s)))  # sqrt of a size
        y = y * (2 // torch.tensor(s)).to(torch.float32)  # scalar first, to()
        return y + torch.tensor(s) / 2  # int / int -> float


class ScriptedShapeMath(nn.Module):
    def forward(self, x):
        s = x.size(1)
        d = x.size(2)
        scale = float(d // 4) ** 0.5
        return x / scale * math.sqrt(s) + x.numel() // (s * 4)


class Linear2(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return torch.relu(self.fc(x)) * 2


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.special.i0e(self.fc(x)) + torch.special.i0e(x)


def _compile(path, folder, inputs=None, **extra):
    params = {"model": path, "out_dir": os.path.join(folder, "build"), "threads": 2, "measure": False, "edge_values": False, **extra}
    if inputs is not None:
        params["inputs"] = inputs
    return compile_model(params, JobContext("t"))


def _save_trace(m, example, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(m.eval(), example, check_trace=False).save(path)
    return path


SYM = [{"name": "x", "dims": [{"name": "b", "min": 1, "max": 4}, {"name": "s", "min": 2, "max": 32}, 16]}]
STATIC = [{"name": "x", "dims": [2, 3, 16]}]


@pytest.mark.parametrize("inputs", [STATIC, SYM], ids=["static", "symbolic"])
def test_traced_shape_arithmetic(tmp_path, inputs):
    path = _save_trace(ShapeMath(), (torch.randn(2, 3, 16),), str(tmp_path / "m.pt"))
    r = _compile(path, str(tmp_path), inputs, strict=True)
    assert r["verification"]["ok"], r["verification"]


def test_scripted_shape_arithmetic(tmp_path):
    path = str(tmp_path / "m.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(ScriptedShapeMath()).save(path)
    r = _compile(path, str(tmp_path), STATIC, strict=True)
    assert r["verification"]["ok"], r["verification"]


def test_strict_lists_ops_without_importer_or_decomposition(tmp_path):
    path = _save_trace(Odd(), (torch.randn(2, 8),), str(tmp_path / "m.pt"))
    with pytest.raises(EngineError) as e:
        _compile(path, str(tmp_path), [{"name": "x", "dims": [2, 8]}], strict=True)
    assert e.value.code == "unsupported_op" and "special_i0e.default (x2)" in e.value.message
    assert "--strict" in e.value.message


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt2")
    torch.manual_seed(0)
    m = Linear2().eval()
    batch = torch.export.Dim("batch", min=1, max=8)
    ep = torch.export.export(m, (torch.randn(2, 16),), dynamic_shapes=({0: batch},))
    path = str(d / "m.pt2")
    torch.export.save(ep, path)
    return path, m


def test_pt2_inspect_shows_inputs_and_ops(pt2):
    path, _m = pt2
    info = inspect_file(path)
    assert info["format"] == "pt2" and info["path"] == path
    assert info["inputs"][0]["name"] == "x" and info["inputs"][0]["spec"]["dims"] == [{"name": "batch", "min": 1, "max": 8}, 16]
    assert info["ops"].get("aten::linear") == 1 and info["ops"].get("aten::relu") == 1
    assert info["parameters"]["count"] == 16 * 16 + 16


def test_pt2_compiles_with_its_own_specs_and_tunes(pt2, tmp_path):
    path, _m = pt2
    r = _compile(path, str(tmp_path), export_path=str(tmp_path / "out.pt"))
    assert r["inputs"][0]["dims"][0] == {"name": "batch", "min": 1, "max": 8}
    assert r["verification"]["ok"] and len(r["verification"]["checks"]) >= 3
    assert os.path.exists(r["files"]["exported"])


def test_pt2_user_specs_override(pt2, tmp_path):
    path, _m = pt2
    r = _compile(path, str(tmp_path), [{"name": "x", "dims": [3, 16]}])
    assert r["inputs"][0]["dims"] == [3, 16] and r["verification"]["ok"]


def test_aoti_package_is_refused_with_a_sentence(tmp_path):
    # The layout aoti_compile_and_package writes: compiled code under data/aotinductor/, no graph.
    path = str(tmp_path / "aoti.pt2")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("aoti/archive_format", "pt2")
        z.writestr("aoti/data/aotinductor/model/model.so", b"\x7fELF")
        z.writestr("aoti/data/aotinductor/model/model.cpp", "")
    for call in (lambda: load_model(path), lambda: inspect_file(path), lambda: _compile(path, str(tmp_path))):
        with pytest.raises(EngineError) as e:
            call()
        assert e.value.code == "aoti_package" and "AOTInductor" in e.value.message and "torch.export.save" in e.value.message


def test_seed_api_takes_an_exported_program(tmp_path):
    torch.manual_seed(0)
    m = Linear2().eval()
    ep = torch.export.export(m, (torch.randn(2, 16),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=8)},))
    tvm_m = torchtvm.compile(ep, {"export_dir": str(tmp_path / "out"), "threads": 2})
    for n in (1, 5, 8):
        x = torch.randn(n, 16)
        torch.testing.assert_close(tvm_m([x])[0], m(x), atol=1e-4, rtol=1e-4)
    fixed = torchtvm.compile(ep, {"input_infos": [("x", (3, 16))], "export_dir": str(tmp_path / "out2"), "threads": 2})
    x = torch.randn(3, 16)
    torch.testing.assert_close(fixed([x])[0], m(x), atol=1e-4, rtol=1e-4)


def test_tuning_with_a_symbolic_dim(tmp_path):
    """Tuned at a listed size inside the range; the module is checked at the range's ends."""
    from torchtvm.pipeline.compile import tune_model

    path = _save_trace(Linear2(), (torch.randn(2, 16),), str(tmp_path / "m.pt"))
    params = {"model": path, "inputs": [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 8}, 16]}], "trials": 2,
              "work_dir": str(tmp_path / "wd"), "threads": 2, "measure": False, "edge_values": False,
              "out_dir": str(tmp_path / "build"), "tune_sizes": {"batch": 4}}
    r = tune_model(params, JobContext("t"))
    assert r["tuning"]["tuned_at"] == {"batch": 4} and r["tuning"]["trials"] >= 1
    assert "do not follow a symbol" in r["tuning"]["tuned_at_note"]
    shapes = [c["input_shapes"][0][0] for c in r["verification"]["checks"]]
    assert 1 in shapes and 8 in shapes and r["verification"]["ok"]
    with pytest.raises(EngineError) as e:
        tune_model({**params, "tune_sizes": {"batch": 9}}, JobContext("t"))
    assert e.value.code == "bad_tune_sizes" and "1..8" in e.value.message


def test_traced_encoder_fast_path_projects_qkv_in_one_gemm(tmp_path):
    """A TransformerEncoderLayer traced under no_grad records torch's fused fast path
    (aten::_transformer_encoder_layer_fwd). Its decomposition projects q, k and v with one GEMM, as
    the fast path does, and the attention reads them where they lie: one [.., 3d] linear, no
    three [.., d] ones, and the result matches PyTorch's."""
    torch.manual_seed(13)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, 6, 32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(layer, (x,), check_trace=False)
    assert "aten::_transformer_encoder_layer_fwd" in str(traced.inlined_graph)
    path = str(tmp_path / "enc.pt")
    traced.save(path)
    r = _compile(path, str(tmp_path), [{"name": "x", "dims": [2, 6, 32]}], placement="library")
    assert r["verification"]["ok"], r["verification"]
    linears = [o["shape"][-1] for o in r["placement"]["ops"] if o["kind"] == "linear"]
    assert sorted(linears) == [32, 32, 64, 96], linears
    assert [o["kind"] for o in r["placement"]["ops"]].count("attention") == 1
