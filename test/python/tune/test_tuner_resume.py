"""Resuming a tune reuses the imported model and its tasks kept in the work dir (import_cache), and
imports again when the model file, the input specs or the engine changed. Tiny two-matmul model."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import torchtvm.frontend.importer as importer
import torchtvm.pipeline.stages as stages
from torchtvm.frontend import import_cache
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import tune_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INPUTS = [{"name": "x", "dims": [4, 32], "dtype": "float32"}]


@pytest.fixture
def model(two_op_model):
    return two_op_model


@pytest.fixture
def imports(monkeypatch):
    """Counts the TorchScript -> Relax imports (the tune job's and the final build's)."""
    calls = []
    real = importer.import_torchscript

    def counting(*a, **kw):
        calls.append(a[1])
        return real(*a, **kw)

    monkeypatch.setattr(importer, "import_torchscript", counting)
    monkeypatch.setattr(stages, "import_torchscript", counting)
    return calls


def _tune(model, work_dir, trials, inputs=INPUTS):
    events = []
    ctx = JobContext("t", lambda ev, data: events.append((ev, data)))
    params = {"model": model, "inputs": inputs, "trials": trials, "work_dir": work_dir, "threads": 2, "measure": False, "edge_values": False, "out_dir": os.path.join(work_dir, "..", "build")}
    return tune_model(params, ctx), events


def _logs(events):
    return [d["message"] for e, d in events if e == "log"]


def test_resume_skips_the_import(model, tmp_path, imports):
    wd = str(tmp_path / "wd")
    first, _ = _tune(model, wd, trials=2)
    assert first["tuning"]["import"]["reused"] is False
    assert len(imports) == 1, "a tune imports once: the final build reuses the module it tuned"
    assert first["verification"]["ok"]
    entries = os.listdir(os.path.join(wd, import_cache.CACHE_DIR))
    assert len(entries) == 1
    meta = json.load(open(os.path.join(wd, import_cache.CACHE_DIR, entries[0], "meta.json")))
    assert meta["model_sha256"] == import_cache.file_sha256(model) and meta["inputs"][0]["dims"] == [4, 32]

    imports.clear()
    second, events = _tune(model, wd, trials=4)  # two more trials on top of the two kept
    t = second["tuning"]
    assert t["import"]["reused"] is True and t["import"]["tasks_reused"] is True
    assert imports == [], "the resume must not import the model again"
    assert any(m.startswith("Reused the imported model and its 2 tuning tasks") for m in _logs(events))
    assert t["resumed_records"] >= 2 and t["new_trials"] >= 1 and t["trials"] >= 4
    # The kept tasks are the model's: the earlier records are matched to them, none are foreign.
    assert t["ignored_records"] == {"other_kernels": 0, "other_target": 0}
    assert second["verification"]["ok"]
    progress = [d["message"] for e, d in events if e == "job.progress"]
    assert "reusing the imported model kept in the work dir" in progress
    assert not any("converting TorchScript" in m for m in progress)
    # The graph view still finds each placed op's graph node (the cache keeps where vars came from).
    # By op: the report lists library ops before TVM's, and with two more trials either tiny op may
    # measure faster on the other side.
    nodes = {o["name"]: o.get("node") for o in second.get("placement", {}).get("ops", [])}
    assert nodes and None not in nodes.values() and nodes == {o["name"]: o.get("node") for o in first["placement"]["ops"]}


def test_changed_specs_or_model_import_again(model, tmp_path, imports):
    wd = str(tmp_path / "wd")
    _tune(model, wd, trials=2)
    imports.clear()
    # Other input specs: another import (and both entries are kept).
    r, _ = _tune(model, wd, trials=2, inputs=[{"name": "x", "dims": [2, 32], "dtype": "float32"}])
    assert r["tuning"]["import"]["reused"] is False and len(imports) == 1
    assert len(os.listdir(os.path.join(wd, import_cache.CACHE_DIR))) == 2
    # The same path with other contents (retrained weights): the hash differs, so it imports again,
    # and the result is the new model's (verification compares against the new file).
    imports.clear()
    other = str(tmp_path / "two_op.pt")
    shutil.copy(model, other)
    r1, _ = _tune(other, str(tmp_path / "wd2"), trials=2)
    assert r1["tuning"]["import"]["reused"] is False
    code = "import sys, torch; m = torch.jit.load(sys.argv[1]); sd = m.state_dict(); [p.add_(1.0) for p in sd.values()]; m.save(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, other], check=True)
    imports.clear()
    r2, _ = _tune(other, str(tmp_path / "wd2"), trials=2)
    assert r2["tuning"]["import"]["reused"] is False and len(imports) == 1
    assert r2["verification"]["ok"]


def test_damaged_cache_is_a_miss(model, tmp_path, imports):
    wd = str(tmp_path / "wd")
    _tune(model, wd, trials=2)
    (entry,) = os.listdir(os.path.join(wd, import_cache.CACHE_DIR))
    with open(os.path.join(wd, import_cache.CACHE_DIR, entry, "relax.json"), "w") as f:
        f.write('{"root": 1, "nodes": [')  # torn by a kill
    imports.clear()
    r, _ = _tune(model, wd, trials=2)
    assert r["tuning"]["import"]["reused"] is False and len(imports) == 1
    assert r["verification"]["ok"]
    # ... and the entry was written again, so the next resume reuses it.
    imports.clear()
    r, _ = _tune(model, wd, trials=2)
    assert r["tuning"]["import"]["reused"] is True and imports == []


def test_engine_change_is_a_miss(model, tmp_path, imports, monkeypatch):
    wd = str(tmp_path / "wd")
    _tune(model, wd, trials=2)
    monkeypatch.setattr(import_cache, "_fingerprint", "another engine")
    imports.clear()
    r, _ = _tune(model, wd, trials=2)
    assert r["tuning"]["import"]["reused"] is False and len(imports) == 1
