"""Model zoo: the models users actually have, compiled by default (fallback on), checked against
PyTorch, exported and reloaded in a fresh process. Tiny random-weight models (see _zoo_models.py);
two of them also go through torch.export `.pt2` files, one with a symbolic dim.

Each model is compiled once (with symbolic dims where the model has them: verification then runs
at the sample size and at both ends of every range), and one fresh interpreter reloads every export.
"""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from _export_helpers import run_fresh
from _zoo_models import BertLayer, ViTBlock, zoo
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model
from torchtvm.common.specs import parse_specs, random_inputs

ZOO = zoo()
# Compiled symbolic (batch, and seq where the model has one); the convolution nets static, as
# vision models are usually served (their symbolic builds are in scripts/bench_zoo.py).
SYMBOLIC = {"bert", "vit", "encoder", "lstm", "gru", "scripted_rnn", "unsupported"}
# Whole-graph imports: these must not need fallback.
WHOLE = {"bert", "vit", "encoder", "lstm", "gru", "unet", "mobilenet"}


def _compile(model_path: str, inputs, folder: str, name: str) -> dict:
    # One build folder per model: the engine loads each build's model.so, and a process cannot
    # load two different libraries from one path.
    params = {"model": model_path, "out_dir": os.path.join(folder, "build", name), "threads": 2, "measure": False,
              "export_path": os.path.join(folder, f"{name}_tvm.pt"), "edge_values": False}
    if inputs is not None:
        params["inputs"] = inputs
    return compile_model(params, JobContext("zoo"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("zoo"))
    out = {}
    for name, (make, static, symbolic) in ZOO.items():
        specs = symbolic if name in SYMBOLIC else static
        path = os.path.join(folder, f"{name}.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make().save(path)
        r = _compile(path, specs, folder, name)
        out[name] = (path, specs, r)
    # The same path for torch.export programs: a static ViT and a BERT layer with batch and seq dynamic.
    torch.manual_seed(0)
    vit = ViTBlock().eval()
    with torch.no_grad():
        ep = torch.export.export(vit, (torch.randn(2, 5, 32),))
    torch.export.save(ep, os.path.join(folder, "vit.pt2"))
    out["vit.pt2"] = (os.path.join(folder, "vit.pt2"), None, _compile(os.path.join(folder, "vit.pt2"), None, folder, "vit_pt2"))
    torch.manual_seed(0)
    bert = BertLayer().eval()
    b, s = torch.export.Dim("batch", min=1, max=4), torch.export.Dim("seq", min=2, max=16)
    with torch.no_grad():
        ep = torch.export.export(bert, (torch.randn(2, 8, 32), torch.ones(2, 8)), dynamic_shapes=({0: b, 1: s}, {0: b, 1: s}))
    torch.export.save(ep, os.path.join(folder, "bert.pt2"))
    out["bert.pt2"] = (os.path.join(folder, "bert.pt2"), None, _compile(os.path.join(folder, "bert.pt2"), None, folder, "bert_pt2"))
    return folder, out


@pytest.mark.parametrize("name", list(ZOO) + ["vit.pt2", "bert.pt2"])
def test_compiles_by_default_and_matches_pytorch(built, name):
    _folder, out = built
    _path, _specs, r = out[name]
    ver = r["verification"]
    assert ver["ok"], (name, ver)
    assert r["files"].get("exported"), r.get("export_skipped")
    if name.split(".")[0] in WHOLE:
        assert "fallback" not in r, r.get("fallback")
    if name in SYMBOLIC or name == "bert.pt2":
        # checked at the sample size and at both ends of every range
        assert len(ver["checks"]) >= 3


def test_pt2_dynamic_dims_become_the_default_specs(built):
    _folder, out = built
    dims = {s["name"]: s["dims"] for s in out["bert.pt2"][2]["inputs"]}
    batch, seq = dims["x"][0], dims["x"][1]
    assert isinstance(batch, dict) and (batch["min"], batch["max"]) == (1, 4)
    assert isinstance(seq, dict) and (seq["min"], seq["max"]) == (2, 16)
    assert dims["mask"][:2] == [batch, seq] and dims["x"][2] == 32
    assert out["vit.pt2"][2]["inputs"][0]["dims"] == [2, 5, 32]


def test_fallback_keeps_only_what_cannot_compile(built):
    _folder, out = built
    rnn = out["scripted_rnn"][2]
    assert rnn["fallback"]["code"] == "import_failed" and "prim::Loop" in rnn["fallback"]["reason"]
    # Graph level: the loop stays in TorchScript, its whole body but the indexing by the counter
    # (x[:, t]) runs in TVM, not only the nn.Linear.
    cov = rnn["coverage"]
    assert cov["level"] == "graph"
    (seg,) = [s for s in cov["segments"] if s["compiled"]]
    assert seg["where"] == "loop body" and seg["ops"] == ["aten::cat", "aten::linear", "aten::tanh", "aten::mul", "aten::add"]
    assert seg["inputs"][0]["dims"][0]["name"] == "batch"  # the segment follows the user's symbol
    odd = out["unsupported"][2]
    assert odd["fallback"]["code"] == "unsupported_op" and "special_i0e" in odd["fallback"]["reason"]
    cov = odd["coverage"]
    assert [(s["ops"], s["compiled"]) for s in cov["segments"]] == [(["aten::linear", "aten::relu"], True)] * 2
    assert (cov["ops_compiled"], cov["ops_total"]) == (4, 5)  # everything but special_i0e
    assert 0 < cov["time_share_compiled"] <= 1


def test_exports_reload_in_a_fresh_process(built):
    folder, out = built
    cases = []
    for name, (path, specs, r) in out.items():
        spec_objs = parse_specs(r["inputs"])
        shapes = [list(t.shape) for t in random_inputs(spec_objs)]
        inputs = random_inputs(spec_objs, seed=7)
        if path.endswith(".pt2"):
            ref = torch.export.load(path).module()(*inputs)
        else:
            ref = torch.jit.load(path)(*inputs)
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        data = os.path.join(folder, f"{name}.io.pt")
        torch.save({"inputs": inputs, "ref": ref}, data)
        cases.append({"name": name, "exported": r["files"]["exported"], "data": data, "shapes": shapes})
    code = f"""
        import json, torch, torchtvm
        bad = []
        for c in json.loads({json.dumps(json.dumps(cases))}):
            m = torch.jit.load(c["exported"])
            d = torch.load(c["data"])
            out = m(*d["inputs"])  # whole or partly compiled: called as the model is
            out = [out] if isinstance(out, torch.Tensor) else list(out)
            for a, b in zip(out, d["ref"]):
                if not torch.allclose(a, b, atol=1e-4, rtol=1e-3):
                    bad.append((c["name"], float((a - b).abs().max())))
        print("BAD", bad)
    """
    p = run_fresh(code)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "BAD []" in p.stdout, p.stdout
