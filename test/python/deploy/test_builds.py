"""A build is an artifact with an identity (deploy/builds.py): compile packages the verified,
measured build once; exporting copies that package byte for byte, without torch or TVM."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from torchtvm.common.errors import EngineError
from torchtvm.common.progress import JobContext
from torchtvm.deploy import builds
from torchtvm.pipeline.compile import compile_model

ENGINE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "native", "engine")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("build")
    model = str(folder / "mlp.pt")
    torch.jit.save(torch.jit.trace(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval(), torch.randn(2, 8)), model)
    events = []
    result = compile_model({"model": model, "inputs": [{"name": "x", "dims": [2, 8], "dtype": "float32"}], "out_dir": str(folder / "out"), "export_path": str(folder / "direct.pt"), "measure": False},
                           JobContext("t", lambda e, d: events.append((e, d))))
    return folder, result, events


def test_compile_writes_the_build_with_its_identity(built):
    folder, result, events = built
    b = result["build"]
    out = folder / "out"
    assert b["dir"] == str(out) and b["package"] == str(out / "model.pt")
    assert b["sha256"] == sha(out / "model.pt") and b["id"] == b["sha256"][:12]
    assert b["library_sha256"] == sha(out / "model.so") and b["tuned"] is False and b["partial"] is False
    record = json.loads((out / "build.json").read_text())
    assert record["build"]["sha256"] == b["sha256"]
    assert record["result"]["verification"]["ok"] is True and "build" not in record["result"]
    # the package carries the library whose hash the build names
    import torchtvm  # noqa: F401  (registers the runtime op)

    meta = json.loads(torch.jit.load(str(out / "model.pt")).torchtvm_module.metadata())
    assert meta["library_sha256"] == b["library_sha256"]
    assert ("job.progress", "package") in [(e, d.get("stage")) for e, d in events]


def test_a_compile_with_an_export_path_writes_the_package(built):
    folder, result, _ = built
    assert sha(folder / "direct.pt") == result["build"]["sha256"]


def test_export_copies_the_package_without_torch_or_tvm(built, tmp_path):
    folder, result, _ = built
    dest = tmp_path / "exported.pt"
    # torch and TVM cannot even be imported: nothing is imported, placed or built again.
    code = (
        "import json, sys; sys.modules['torch'] = None; sys.modules['tvm'] = None\n"
        "from torchtvm.deploy.builds import export_build\n"
        f"r = export_build({str(folder / 'out')!r}, {str(dest)!r})\n"
        "print(json.dumps({'exported': r['files']['exported'], 'build': r['build'], 'verification': r['verification']['ok']}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ENGINE, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["exported"] == str(dest) and r["verification"] is True
    assert r["build"]["sha256"] == result["build"]["sha256"] == sha(dest)
    assert dest.read_bytes() == (folder / "out" / "model.pt").read_bytes()


def test_a_changed_or_missing_build_is_refused(built, tmp_path):
    folder, _, _ = built
    copy = tmp_path / "b"
    copy.mkdir()
    for name in ("build.json", "model.pt"):
        (copy / name).write_bytes((folder / "out" / name).read_bytes())
    with open(copy / "model.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(EngineError) as e:
        builds.export_build(str(copy), str(tmp_path / "x.pt"))
    assert e.value.code == "build_changed" and "changed after the build" in e.value.message
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(EngineError) as e:
        builds.export_build(str(tmp_path / "nowhere"), str(tmp_path / "x.pt"))
    assert e.value.code == "build_missing"
    (copy / "build.json").write_text("{not json")
    with pytest.raises(EngineError) as e:
        builds.export_build(str(copy), str(tmp_path / "x.pt"))
    assert e.value.code == "build_damaged" and "compile the model again" in e.value.message


def test_the_verification_gates_apply_to_a_build(built, tmp_path):
    folder, _, _ = built
    copy = tmp_path / "b"
    copy.mkdir()
    (copy / "model.pt").write_bytes((folder / "out" / "model.pt").read_bytes())
    record = json.loads((folder / "out" / "build.json").read_text())
    record["result"]["verification"]["edge_values"] = {"ok": False, "failed": ["nan"]}
    (copy / "build.json").write_text(json.dumps(record))
    r = builds.export_build(str(copy), str(tmp_path / "x.pt"))
    assert "edge values (nan)" in r["export_skipped"] and "exported" not in r["files"] and not (tmp_path / "x.pt").exists()
    r = builds.export_build(str(copy), str(tmp_path / "x.pt"), accept_edge_mismatch=True)
    assert r["files"]["exported"] == str(tmp_path / "x.pt") and "export_skipped" not in r
    record["result"]["verification"]["ok"] = False
    (copy / "build.json").write_text(json.dumps(record))
    r = builds.export_build(str(copy), str(tmp_path / "y.pt"))
    assert "differ from PyTorch" in r["export_skipped"] and not (tmp_path / "y.pt").exists()
