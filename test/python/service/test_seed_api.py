"""The seed's API: torchtvm.compile(jit_module, option) -> a module that scripts, composes inside a
bigger scripted module (the seed's PredictorTVM), saves, loads in a fresh process, and traces."""

import os

import pytest
import torch
import torch.nn as nn
from typing import List

import torchtvm
from _export_helpers import SmallConv, run_fresh


class PredictorTVM(nn.Module):
    """The seed's pattern: preprocessing + the TVM module + argmax."""

    def __init__(self, tvm_module):
        super().__init__()
        self.tvm_module = tvm_module
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x - self.mean) / self.std
        y: List[torch.Tensor] = self.tvm_module([x])
        return y[0].argmax(-1), y[0]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallConv().eval()
    x = torch.randn(1, 3, 8, 8)
    option = {"input_infos": [("x", (1, 3, 8, 8))], "default_dtype": "float32",
              "export_dir": str(tmp_path_factory.mktemp("seed") / "pytorch_compiled"), "num_outputs": 1,
              "tuning_n_trials": 0, "tuning_log_file": "tuning.log"}
    return model, torchtvm.compile(torch.jit.trace(model, x), option), option


def test_compile_scripts_and_matches(compiled):
    model, tvm_mod, _ = compiled
    x = torch.randn(1, 3, 8, 8)
    scripted = torch.jit.script(tvm_mod)
    torch.testing.assert_close(scripted([x])[0], model(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tvm_mod([x])[0], model(x), atol=1e-4, rtol=1e-4)


def test_predictor_scripts_saves_and_loads_fresh(compiled, tmp_path):
    model, tvm_mod, _ = compiled
    pred = torch.jit.script(PredictorTVM(tvm_mod))
    path = str(tmp_path / "predictor.pt")
    torch.jit.save(pred, path)
    x = torch.rand(1, 3, 8, 8)
    idx, logits = pred(x)
    torch.save({"x": x, "idx": idx, "logits": logits}, str(tmp_path / "io.pt"))
    proc = run_fresh(f"""
        import torch, torchtvm
        m = torch.jit.load({path!r})
        io = torch.load({str(tmp_path / 'io.pt')!r})
        idx, logits = m(io["x"])
        assert torch.equal(idx, io["idx"]) and torch.allclose(logits, io["logits"]), "outputs differ"
        print("same")
    """)
    assert proc.returncode == 0 and "same" in proc.stdout, proc.stderr[-3000:]


def test_predictor_traces(compiled, tmp_path):
    _model, tvm_mod, _ = compiled
    x = torch.rand(1, 3, 8, 8)
    eager = PredictorTVM(tvm_mod)
    traced = torch.jit.trace(eager, x)
    torch.testing.assert_close(traced(x)[1], eager(x)[1])
    path = str(tmp_path / "traced.pt")
    torch.jit.save(traced, path)
    loaded = torch.jit.load(path)
    torch.testing.assert_close(loaded(x)[1], eager(x)[1])


def test_to_device(compiled):
    _model, tvm_mod, _ = compiled
    assert tvm_mod.to("cpu") is tvm_mod and tvm_mod.to(torch.device("cpu")) is tvm_mod and tvm_mod.cpu() is tvm_mod
    with pytest.raises(RuntimeError, match="compiled for cpu and cannot move to cuda"):
        tvm_mod.to("cuda")
    with pytest.raises(RuntimeError, match="compiled for cpu and cannot move to cuda"):
        tvm_mod.cuda()


def test_bad_options(compiled):
    model, _tvm_mod, option = compiled
    from torchtvm.common.errors import EngineError

    with pytest.raises(EngineError, match="TorchScript module"):
        torchtvm.compile(model, option)
    with pytest.raises(EngineError, match="input_infos"):
        torchtvm.compile(torch.jit.trace(model, torch.randn(1, 3, 8, 8)), {"export_dir": option["export_dir"]})


def test_tuning_trials_become_a_tune_in_the_log_files_work_dir(compiled, monkeypatch):
    from torchtvm.service import seed_api

    model, _tvm_mod, option = compiled
    calls = []
    real = seed_api.compile_run

    def spy(options, ctx):
        calls.append((options.trials, options.work_dir))
        return real(options.replace(trials=0, work_dir=None), ctx)  # the tune itself is test_tune's

    monkeypatch.setattr(seed_api, "compile_run", spy)
    x = torch.randn(1, 3, 8, 8)
    m = torchtvm.compile(torch.jit.trace(model, x), {**option, "tuning_n_trials": 4})
    assert calls and calls[0][0] == 4 and calls[0][1].endswith("tuning.ms")
    torch.testing.assert_close(m([x])[0], model(x), atol=1e-4, rtol=1e-4)
