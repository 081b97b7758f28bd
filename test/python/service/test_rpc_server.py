"""Engine: import, build and verify small models against PyTorch; every bad input gets a sentence."""

import os
import zipfile

import pytest
import torch
import torch.nn as nn

from _export_helpers import Embed, TwoInputs, TwoOutputs
from torchtvm.common.errors import EngineError
from torchtvm.common.progress import JobContext
from torchtvm.service.methods import METHODS


class ConvBnRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class LinearGelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)

    def forward(self, x):
        return nn.functional.gelu(self.fc(x))


class Unsupported(nn.Module):
    def forward(self, x):
        return torch.special.i1e(x) + torch.special.i1e(x * 2)


def save(tmp_path, module, *example, name="m.pt"):
    path = str(tmp_path / name)
    torch.jit.trace(module.eval(), example).save(path)
    return path


def compile_(path, inputs, tmp_path, **extra):
    events = []
    ctx = JobContext("t", lambda e, d: events.append((e, d)))
    params = {"model": path, "inputs": inputs, "out_dir": str(tmp_path / "build"), "threads": 2, "measure": False, **extra}
    result = METHODS["compile"](params, ctx)
    return result, events


def spec(name, dims, dtype="float32", rng=None):
    s = {"name": name, "dims": dims, "dtype": dtype}
    if rng:
        s["range"] = rng
    return s


@pytest.mark.parametrize(
    "module,example,inputs",
    [
        (ConvBnRelu(), (torch.randn(1, 3, 16, 16),), [spec("x", [1, 3, 16, 16])]),
        (LinearGelu(), (torch.randn(4, 16),), [spec("x", [4, 16])]),
        (TwoInputs(), (torch.randn(2, 5), torch.randn(2, 5)), [spec("a", [2, 5]), spec("b", [2, 5])]),
        (TwoOutputs(), (torch.randn(3, 8),), [spec("x", [3, 8])]),
        (Embed(), (torch.randint(0, 100, (2, 7)),), [spec("ids", [2, 7], "int64", [0, 100])]),
    ],
    ids=["conv_bn_relu", "linear_gelu", "two_inputs", "two_outputs", "int64_embedding"],
)
def test_compile_and_verify(tmp_path, module, example, inputs):
    path = save(tmp_path, module, *example)
    result, events = compile_(path, inputs, tmp_path)
    v = result["verification"]
    assert v["ok"], v
    with torch.no_grad():
        ref = module(*example)
    n_out = len(ref) if isinstance(ref, tuple) else 1
    assert result["num_outputs"] == n_out and len(v["outputs"]) == n_out
    for o in v["outputs"]:
        assert o["max_abs"] is not None and o["max_abs"] <= 1e-3
    assert os.path.getsize(result["files"]["library"]) > 0
    stages = [d["stage"] for e, d in events if e == "job.progress"]
    assert stages.index("import") < stages.index("build") < stages.index("verify")
    assert result["timings_s"]["import"] > 0 and result["timings_s"]["build"] > 0


def test_float16_uses_half_tolerances(tmp_path):
    m = LinearGelu().half()
    path = save(tmp_path, m, torch.randn(4, 16).half())
    result, _ = compile_(path, [spec("x", [4, 16], "float16")], tmp_path)
    out = result["verification"]["outputs"][0]
    assert result["verification"]["ok"], out
    assert out["dtype"] == "float16" and out["atol"] == pytest.approx(1e-2)


def test_latency_is_measured_in_the_same_run(tmp_path):
    path = save(tmp_path, LinearGelu(), torch.randn(4, 16))
    result, _ = compile_(path, [spec("x", [4, 16])], tmp_path, measure=True)
    lat = result["latency_ms"]
    assert lat["torch"]["runs"] >= 3 and lat["tvm"]["runs"] >= 3
    assert 0 < lat["torch"]["min"] <= lat["torch"]["p50"] <= lat["torch"]["p90"]
    assert lat["ratio"] == pytest.approx(lat["tvm"]["p50"] / lat["torch"]["p50"])


def test_inspect(tmp_path):
    path = save(tmp_path, ConvBnRelu(), torch.randn(1, 3, 8, 8))
    r = METHODS["inspect"]({"model": path}, JobContext())
    assert [i["name"] for i in r["inputs"]] == ["x"]
    assert r["ops"]["aten::_convolution"] == 1 and r["ops"]["aten::batch_norm"] == 1
    assert r["parameters"]["count"] == 3 * 8 * 9 + 8 + 8 + 8
    assert r["exported"] is None


# ---- bad input: one sentence each -------------------------------------------------------------


def fails(code, fn):
    with pytest.raises(EngineError) as ei:
        fn()
    assert ei.value.code == code, (ei.value.code, ei.value.message)
    msg = ei.value.message
    assert msg.endswith(".") and "Traceback" not in msg and len(msg) < 600
    return msg


def test_missing_file(tmp_path):
    msg = fails("file_not_found", lambda: METHODS["inspect"]({"model": str(tmp_path / "nope.pt")}, JobContext()))
    assert "nope.pt does not exist" in msg


def test_not_a_zip(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_bytes(b"not a zip at all")
    assert "not a zip" in fails("not_a_zip", lambda: METHODS["inspect"]({"model": str(p)}, JobContext()))


def _inspect_within(path: str, seconds: float = 30.0):
    """inspect `path` on a thread: a read that never ends (a device, a FIFO) fails the test instead
    of hanging the suite."""
    import threading

    out: dict = {}

    def go():
        try:
            out["result"] = METHODS["inspect"]({"model": path}, JobContext())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"inspect {path} did not return within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["result"]


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_special_files_are_refused_without_reading_them(tmp_path, kind):
    """/dev/zero never ends and a FIFO blocks its reader until a writer comes: a model path must be
    a regular file, checked before anything reads it."""
    if kind == "device":
        path = "/dev/zero"
    else:
        path = str(tmp_path / "pipe.pt")
        os.mkfifo(path)
    msg = fails("not_a_file", lambda: _inspect_within(path))
    assert "not a regular file" in msg and "torch.jit.save" in msg


def test_empty_and_cut_short_archives_say_so(tmp_path):
    empty = tmp_path / "empty.pt2"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in fails("empty_file", lambda: _inspect_within(str(empty)))
    whole = save(tmp_path, LinearGelu(), torch.randn(4, 16))
    for name in ("cut.pt", "cut.pt2"):
        cut = tmp_path / name
        data = open(whole, "rb").read()
        cut.write_bytes(data[: len(data) // 2])
        msg = fails("damaged_archive", lambda: _inspect_within(str(cut)))
        assert "cut short" in msg and "not a TorchScript file" not in msg


def test_a_bad_target_is_refused_before_the_model_is_loaded(tmp_path, monkeypatch):
    """--target "llvm -mcpu=znver4" (the old string form) was refused after an 8 s import."""
    from torchtvm.pipeline import stages

    def never(run):
        raise AssertionError("the model was loaded before the target was checked")

    monkeypatch.setattr(stages, "load", never)
    path = save(tmp_path, LinearGelu(), torch.randn(4, 16))
    msg = fails("bad_target", lambda: compile_(path, [spec("x", [4, 16])], tmp_path, target="llvm -mcpu=znver4"))
    assert "llvm -mcpu=znver4" in msg


def test_a_model_without_inputs_compiles_and_one_with_inputs_names_them(tmp_path):
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3))

        def forward(self):
            return self.w * 2

    path = str(tmp_path / "constant.pt")
    module = torch.jit.script(Constant())
    module.save(path)
    out = str(tmp_path / "constant_tvm.pt")
    result, _ = compile_(path, [], tmp_path, export_path=out)
    assert result["verification"]["ok"] and result["files"]["exported"] == out
    torch.testing.assert_close(torch.jit.load(out)(), module())
    # a model that takes inputs, given none: the sentence names them and says how
    other = save(tmp_path, LinearGelu(), torch.randn(4, 16), name="lg.pt")
    msg = fails("input_count", lambda: compile_(other, [], tmp_path))
    assert "takes 1 input(s) (x) but 0 were described" in msg and "--input x:1,3,224,224:float32" in msg


def test_writes_stay_inside_the_roots_the_server_passed_even_through_a_swapped_folder(tmp_path):
    """`torchtvm serve` checks a job's paths when it starts and passes its folders on: the engine
    resolves each write's folder again at the moment of writing. A folder of the export path that is
    (now) a symlink to somewhere outside is refused, and nothing lands there."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "exports").symlink_to(outside, target_is_directory=True)  # swapped after the check
    path = save(tmp_path, LinearGelu(), torch.randn(4, 16))
    params = {"out_dir": str(allowed / "build"), "export_path": str(allowed / "exports" / "m_tvm.pt"), "write_roots": [str(allowed)]}
    msg = fails("path_not_allowed", lambda: compile_(path, [spec("x", [4, 16])], tmp_path, **params))
    assert "outside the folders this server may write to" in msg and str(outside) in msg
    assert list(outside.iterdir()) == []
    # the same job with the folder as it was checked: written
    (allowed / "exports").unlink()
    (allowed / "exports").mkdir()
    result, _ = compile_(path, [spec("x", [4, 16])], tmp_path, **params)
    assert result["files"]["exported"] == str(allowed / "exports" / "m_tvm.pt")


def test_state_dict_is_not_torchscript(tmp_path):
    p = str(tmp_path / "sd.pt")
    torch.save(LinearGelu().state_dict(), p)
    assert zipfile.is_zipfile(p)
    msg = fails("not_torchscript", lambda: METHODS["inspect"]({"model": p}, JobContext()))
    assert "state dict" in msg and "torch.jit" in msg


def test_wrong_number_of_inputs(tmp_path):
    path = save(tmp_path, TwoInputs(), torch.randn(2, 5), torch.randn(2, 5))
    msg = fails("input_count", lambda: compile_(path, [spec("a", [2, 5])], tmp_path))
    assert "2 input(s) (a, b)" in msg and "1 were described" in msg


def test_shape_the_model_rejects(tmp_path):
    path = save(tmp_path, LinearGelu(), torch.randn(4, 16))
    msg = fails("shape_rejected", lambda: compile_(path, [spec("x", [4, 15])], tmp_path))
    assert "x: [4, 15] float32" in msg


def test_rank_the_model_rejects(tmp_path):
    path = save(tmp_path, ConvBnRelu(), torch.randn(1, 3, 8, 8))
    fails("shape_rejected", lambda: compile_(path, [spec("x", [3, 8, 8, 1, 1])], tmp_path))


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"name": "x", "dims": [4, 0], "dtype": "float32"}, "at least 1"),
        ({"name": "x", "dims": [4, 16], "dtype": "float8"}, "float8"),
        ({"name": "x", "dims": "4,16", "dtype": "float32"}, "dims must be a list"),
        ({"name": "x", "dims": [{"name": "b", "min": 5, "max": 2}, 16], "dtype": "float32"}, "empty range"),
    ],
)
def test_malformed_spec(tmp_path, bad, needle):
    path = save(tmp_path, LinearGelu(), torch.randn(4, 16))
    assert needle in fails("bad_input_spec", lambda: compile_(path, [bad], tmp_path))


def test_unsupported_op_is_named_with_its_count(tmp_path):
    path = save(tmp_path, Unsupported(), torch.randn(4))
    # strict: all or nothing, with the ops named; by default the ops around them compile (fallback)
    msg = fails("unsupported_op", lambda: compile_(path, [spec("x", [4])], tmp_path, strict=True))
    assert "special_i1e" in msg and "(x2)" in msg
    result, _ = compile_(path, [spec("x", [4])], tmp_path)
    assert result["fallback"]["code"] == "unsupported_op" and result["verification"]["ok"]
    assert result["coverage"]["ops_total"] - result["coverage"]["ops_compiled"] == 2  # the two special_i1e
