"""Reliability (issue 13): one test per defect, each against the real engine, TVM and libtorch.

- code for a CPU this machine is not is refused at load and never run (no SIGILL);
- verification compares dtype, shape, NaN and infinities exactly and its metrics serialise;
- traced `x * 0.5` / `x / 255.0` keep PyTorch's dtype; NaN propagates through relu, clamp,
  maximum/minimum and max-pool as in PyTorch; edge values are reported apart;
- every output a caller receives is theirs (constants, inputs and other outputs are not shared);
- neg-bit views are read negated;
- specs that cannot fit memory, duplicate names and float ranges on ints are refused;
- malformed RPC requests get an error reply and the engine keeps serving.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from _export_helpers import REPO, host_cpu_flags, run_fresh
from torchtvm.backend import build as builder
from torchtvm.common import runtime_library as runtime
from torchtvm.common.errors import EngineError
from torchtvm.backend.executor import TvmRunner
from torchtvm.common.progress import JobContext
from torchtvm.common.options import CompileOptions
from torchtvm.pipeline.compile import compile_model, compile_run
from torchtvm.common.specs import parse_specs
from torchtvm.verify.compare import compare, json_safe


def _compile_run(tmp, module, example, specs, **extra):
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(tmp, "model.pt")
    torch.jit.save(torch.jit.trace(module.eval(), example), path)
    params = {"model": path, "inputs": specs, "out_dir": os.path.join(tmp, "build"), "measure": False, **extra}
    return compile_run(CompileOptions.from_params(params), JobContext("test"))


def _compile(tmp, module, example, specs, **extra) -> dict:
    return _compile_run(tmp, module, example, specs, **extra).result


# ---- 1. CPU features --------------------------------------------------------------------------

FOREIGN = '{"kind": "llvm", "mcpu": "sapphirerapids"}'


def test_custom_target_records_the_features_of_that_target():
    info = builder.resolve_target(FOREIGN, 2)
    assert {"avx512fp16", "amx-tile", "avx512f"} <= set(info.features)
    assert info.mcpu == "sapphirerapids"
    mattr = builder.resolve_target('{"kind": "llvm", "mattr": ["+avx2"]}', 2)
    assert "avx2" in mattr.features


def test_features_a_vm_hides_are_left_out_of_the_build_for_this_machine(monkeypatch):
    """LLVM names this CPU's model and gives its features; a VM may hide some (CPUID masked): the
    build for this machine must not use them, or it would be refused by its own check (or SIGILL)."""
    from torchtvm.common import cpu_features

    full = builder.resolve_target("llvm", 2)
    hide = [f for f in ("sha", "avx2") if f in full.features]
    if not hide or not cpu_features.host_flags():
        pytest.skip("this CPU reports neither SHA nor AVX2, or no /proc/cpuinfo")
    shown = cpu_features.host_flags() - {cpu_features.X86_FEATURES[f] for f in hide}
    monkeypatch.setattr(cpu_features, "host_flags", lambda: shown)
    info = builder.resolve_target("llvm", 2)
    assert not set(hide) & set(info.features) and cpu_features.missing_on_host(info.features) == []


def test_amd_only_features_are_recorded_and_a_bdver4_build_is_never_run_here(tmp_path):
    """mcpu=bdver4 (AMD Excavator) makes LLVM emit FMA4 and XOP, which no Intel CPU and no Zen has:
    they are among the features recorded and checked, so the build is refused, not run (SIGILL)."""
    info = builder.resolve_target('{"kind": "llvm", "mcpu": "bdver4"}', 2)
    assert {"fma4", "xop", "tbm", "sse4a"} <= set(info.features)
    if {"fma4", "xop"} <= host_cpu_flags():
        pytest.skip("this CPU has FMA4 and XOP (a Bulldozer): code for bdver4 runs here")
    spec = [{"name": "x", "dims": [2, 8], "dtype": "float32"}]
    out = str(tmp_path / "bdver4.pt")
    r = _compile(str(tmp_path), Scale(), (torch.randn(2, 8),), spec, target='{"kind": "llvm", "mcpu": "bdver4"}', export_path=out)
    v = r["verification"]
    assert v["skipped"] and "which this CPU lacks" in v["reason"] and "fma4" in v["reason"]
    assert not os.path.exists(out) and "Not exported" in r["export_skipped"]


def test_a_target_of_another_architecture_names_the_cross_toolchain(tmp_path):
    """An aarch64 target on an x86 machine: LLVM compiles, the host's linker refuses the object.
    The message named g++ and the disk; it names the cross toolchain now."""
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("written for an x86_64 host")
    spec = [{"name": "x", "dims": [2, 8], "dtype": "float32"}]
    with pytest.raises(EngineError) as e:
        _compile(str(tmp_path), Scale(), (torch.randn(2, 8),), spec, target='{"kind": "llvm", "mtriple": "aarch64-linux-gnu"}')
    assert e.value.code == "cross_link", e.value.message
    assert "cross toolchain" in e.value.message and "aarch64-linux-gnu-g++" in e.value.message


class Scale(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2


def test_foreign_cpu_module_is_never_run_and_refused_at_load(tmp_path):
    lacking = [f for f in ("avx512fp16", "amx-tile") if {"avx512fp16": "avx512_fp16", "amx-tile": "amx_tile"}[f] not in host_cpu_flags()]
    if not lacking:
        pytest.skip("this CPU has AVX-512 FP16 and AMX: build for it cannot be refused here")
    spec = [{"name": "x", "dims": [2, 8], "dtype": "float32"}]
    out = str(tmp_path / "foreign.pt")
    # Not verified (it cannot run here), so not exported unless the user insists...
    r = _compile(str(tmp_path), Scale(), (torch.randn(2, 8),), spec, target=FOREIGN, export_path=out)
    v = r["verification"]
    assert v["skipped"] and not v["ok"] and "which this CPU lacks" in v["reason"] and lacking[0] in v["reason"]
    assert "latency_ms" not in r and not os.path.exists(out) and "Not exported" in r["export_skipped"]
    # ...and when they insist, the file records the features and loading refuses it with a sentence.
    r = _compile(str(tmp_path), Scale(), (torch.randn(2, 8),), spec, target=FOREIGN, export_path=out, export_unverified=True)
    assert os.path.exists(out)
    proc = run_fresh(f"""
        import json, torch, torchtvm
        try:
            m = torch.jit.load({out!r})
        except Exception as e:
            print("REFUSED:", str(e).splitlines()[0] if "needs the CPU feature" not in str(e) else [l for l in str(e).splitlines() if "needs the CPU feature" in l][0])
        else:
            print("LOADED")
            m(torch.randn(2, 8))
            print("RAN")
    """)
    assert proc.returncode == 0, f"the process died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert "REFUSED:" in proc.stdout and "which this CPU does not have" in proc.stdout and lacking[0] in proc.stdout, proc.stdout


def test_tuning_for_a_foreign_cpu_is_refused_before_running_anything(tmp_path):
    from torchtvm.pipeline.compile import tune_model

    if "avx512_fp16" in host_cpu_flags():
        pytest.skip("this CPU has AVX-512 FP16")
    path = str(tmp_path / "m.pt")
    torch.jit.save(torch.jit.trace(Scale(), torch.randn(2, 8)), path)
    with pytest.raises(EngineError) as e:
        tune_model({"model": path, "inputs": [{"name": "x", "dims": [2, 8]}], "trials": 2, "target": FOREIGN, "work_dir": str(tmp_path / "wd")}, JobContext("t"))
    assert e.value.code == "target_not_runnable" and "tune on a machine with that CPU" in e.value.message


# ---- 2. verification --------------------------------------------------------------------------

def test_dtype_mismatch_fails_verification():
    ref = torch.randn(3, 4)
    res = compare([ref.double()], [ref])
    assert not res["ok"] and "dtype float64 from TVM, float32 from PyTorch" in res["outputs"][0]["reason"]


def test_nonfinite_values_are_compared_exactly_and_metrics_serialise():
    ref = torch.tensor([1.0, math.inf, -math.inf, math.nan, 2.0])
    # inf in the reference no longer widens the tolerance: a finite 1e59 there is a mismatch
    bad = torch.tensor([1.0, 1e38, -math.inf, math.nan, 2.0])
    res = compare([bad], [ref])
    assert not res["ok"] and res["outputs"][0]["inf_mismatches"] == 1
    # a NaN where PyTorch has a number (and vice versa) fails
    res = compare([torch.tensor([math.nan, math.inf, -math.inf, 0.0, 2.0])], [ref])
    assert not res["ok"] and res["outputs"][0]["nan_mismatches"] == 2
    # a sign flip of an infinity fails
    assert not compare([torch.tensor([1.0, -math.inf, -math.inf, math.nan, 2.0])], [ref])["ok"]
    # identical non-finite values pass, and tolerance uses the finite values only
    res = compare([ref.clone()], [ref])
    assert res["ok"] and res["outputs"][0]["scale"] == 2.0
    # every metric serialises, whatever the values (float64 overflow makes max_abs inf)
    big = torch.tensor([1e308, -1e308], dtype=torch.float64)
    for r in (compare([bad], [ref]), compare([-big], [big]), compare([torch.full((2,), math.nan)], [torch.zeros(2)])):
        json.dumps(json_safe(r), allow_nan=False)
        json.dumps(r, allow_nan=False)


class ScalarMath(nn.Module):
    def forward(self, x):
        return x * 0.5, x / 255.0, x + 1.5


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_scalar_arithmetic_keeps_pytorch_dtype(tmp_path, dtype):
    example = torch.randint(0, 255, (2, 3)) if dtype == "int64" else torch.randn(2, 3)
    spec = [{"name": "x", "dims": [2, 3], "dtype": dtype, **({"range": [0, 255]} if dtype == "int64" else {})}]
    run = _compile_run(str(tmp_path), ScalarMath(), (example,), spec, edge_values=False)
    r = run.result
    assert r["verification"]["ok"], r["verification"]
    got = TvmRunner(run.built.executable).run([example])
    want = ScalarMath()(example)
    assert [g.dtype for g in got] == [w.dtype for w in want] == [torch.float32] * 3
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


class NanOps(nn.Module):
    def forward(self, x, y):
        return (torch.relu(x), x.clamp(-0.5, 0.5), torch.maximum(x, y), torch.minimum(x, y), F.max_pool2d(x, 2),
                x.softmax(-1), F.hardtanh(x), F.relu6(x), torch.clamp_min(x, 0.0))


def test_nan_and_inf_propagate_as_in_pytorch(tmp_path):
    spec = [{"name": n, "dims": [1, 2, 4, 4], "dtype": "float32"} for n in ("x", "y")]
    run = _compile_run(str(tmp_path), NanOps(), (torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)), spec)
    r = run.result
    runner = TvmRunner(run.built.executable)
    x = torch.randn(1, 2, 4, 4)
    y = torch.randn(1, 2, 4, 4)
    x.view(-1)[[0, 5, 17, 30]] = torch.tensor([math.nan, math.inf, -math.inf, math.nan])
    y.view(-1)[[1, 5, 18]] = torch.tensor([math.nan, math.nan, math.inf])
    got, want = runner.run([x, y]), NanOps()(x, y)
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(torch.isnan(g), torch.isnan(w)), f"output {i}: NaN positions differ"
        torch.testing.assert_close(g, w, equal_nan=True, msg=f"output {i}")
    # the compile's own edge-value pass saw the same, and says so apart from verification
    ev = r["verification"]["edge_values"]
    assert {c["case"] for c in ev["cases"]} == {"nan", "inf", "negative_zero", "zeros", "huge", "tiny"}
    assert ev["ok"], ev["failed"]
    json.dumps(r["verification"], allow_nan=False)


class SignOfZero(nn.Module):
    def forward(self, x):
        return 1 / torch.relu(x), 1 / x.clamp(0, 1), 1 / F.relu6(x), 1 / F.hardtanh(x, 0.0, 1.0), 1 / torch.clamp_min(x, 0.0)


def test_the_sign_of_zero_survives_relu_and_clamp_as_in_pytorch(tmp_path):
    """PyTorch's relu and clamp return x itself where it is not below the bound, so 1/relu(-0.0) is
    -inf; max(-0.0, 0) may give +0.0, and +inf then."""
    spec = [{"name": "x", "dims": [2, 37], "dtype": "float32"}]
    run = _compile_run(str(tmp_path), SignOfZero(), (torch.randn(2, 37),), spec)
    x = torch.randn(2, 37)
    x[0, ::3] = -0.0
    x[1, ::2] = 0.0
    x[1, 1] = math.nan
    got, want = TvmRunner(run.built.executable).run([x]), SignOfZero()(x)
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(torch.isnan(g), torch.isnan(w)), f"output {i}: NaN positions differ"
        assert torch.equal(g[~torch.isnan(w)], w[~torch.isnan(w)]), f"output {i}: {g[0, :6]} against {w[0, :6]}"
    assert run.result["verification"]["edge_values"]["ok"], run.result["verification"]["edge_values"]["failed"]


def test_an_edge_value_mismatch_blocks_the_export_unless_accepted(tmp_path, monkeypatch):
    """Ordinary inputs agree, edge values (NaN, inf, -0.0...) do not: no silent export. The pass
    itself is stood in for (this engine's kernels agree on every edge case it tries)."""
    from torchtvm.pipeline import stages

    failed = {"ok": False, "cases": [{"case": "negative_zero", "ok": False}], "failed": ["negative_zero"]}
    monkeypatch.setattr(stages, "verify_edge_values", lambda *a: failed)
    spec = [{"name": "x", "dims": [2, 8], "dtype": "float32"}]
    out = str(tmp_path / "edge.pt")
    r = _compile(str(tmp_path), Scale(), (torch.randn(2, 8),), spec, export_path=out)
    assert r["verification"]["ok"] and not os.path.exists(out)
    assert "edge values (negative_zero)" in r["export_skipped"] and "--accept-edge-mismatch" in r["export_skipped"]
    r = _compile(str(tmp_path), Scale(), (torch.randn(2, 8),), spec, export_path=out, accept_edge_mismatch=True)
    assert os.path.exists(out) and "export_skipped" not in r


# ---- 3. output ownership and input views --------------------------------------------------------

class Owns(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3), requires_grad=False)

    def forward(self, x):
        y = x * 2
        # a folded constant, an input TVM passes through (clone) or views (reshape), and a fresh one
        return y, self.w * 1.0, x.clone(), x.reshape(-1) + 0, y + 1


@pytest.fixture(scope="module")
def owns_export(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("owns"))
    out = os.path.join(tmp, "owns_tvm.pt")
    torch.manual_seed(0)
    module = Owns()
    run = _compile_run(tmp, module, (torch.randn(2, 3),), [{"name": "x", "dims": [2, 3]}], export_path=out, edge_values=False)
    assert run.result["verification"]["ok"]
    return module, out, run


def test_outputs_are_the_callers_own_under_mutation(owns_export):
    module, out, _ = owns_export
    runtime.load_library()
    m = torch.jit.load(out)
    x = torch.randn(2, 3)
    x0 = x.clone()
    first = m(x)  # the model's own call: a tuple of its five outputs
    for t in first:
        t.add_(100.0)  # the caller owns these: nothing else may change
    assert torch.equal(x, x0), "mutating an output changed the input"
    again = m(x)
    for g, w in zip(again, module(x0)):
        torch.testing.assert_close(g, w)
    # distinct outputs never share memory
    ptrs = [t.data_ptr() for t in again]
    assert len(set(ptrs)) == len(ptrs)


def test_engine_runner_outputs_are_the_callers_own(owns_export):
    module, _, run = owns_export
    runner = TvmRunner(run.built.executable)
    x = torch.randn(2, 3)
    for t in runner.run([x]):
        t.mul_(0)
    torch.testing.assert_close(runner.run([x])[1], module.w * 1.0)


def test_neg_view_inputs_match_pytorch(owns_export):
    module, out, run = owns_export
    runtime.load_library()
    m = torch.jit.load(out)
    base = torch.randn(2, 3)
    neg = torch._neg_view(base)
    assert neg.is_neg()
    for g, w in zip(m(neg), module(-base)):
        torch.testing.assert_close(g, w)
    for g, w in zip(TvmRunner(run.built.executable).run([neg]), module(-base)):
        torch.testing.assert_close(g, w)


def test_inputs_that_need_grad_or_are_sparse_are_refused_with_a_sentence(owns_export):
    """The module has no backward: an input that requires grad would give outputs that silently cut
    the graph, so it is refused unless gradients are off. A sparse input is named, not a crash."""
    _, out, _ = owns_export
    runtime.load_library()
    m = torch.jit.load(out)
    x = torch.randn(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        m(x)
    assert "Input x requires grad" in str(e.value) and "torch.no_grad()" in str(e.value)
    with torch.no_grad():
        assert len(m(x)) == 5
    with torch.inference_mode():
        assert len(m(x)) == 5
    assert len(m(x.detach())) == 5
    with pytest.raises(RuntimeError) as e:
        m(torch.randn(2, 3).to_sparse())
    assert "Input x is a Sparse tensor" in str(e.value) and "to_dense()" in str(e.value)


def test_python_call_with_a_non_tensor_is_a_sentence(owns_export):
    from torchtvm.deploy.export import exported_module

    _, _, run = owns_export
    r = run.result
    m = exported_module(r["files"]["library"], r["target"], r["inputs"], r["num_outputs"])
    for bad, needle in (([None], "Input 0 of the list is a NoneType, not a tensor"), (torch.randn(2, 3), "takes a list of tensors")):
        with pytest.raises(TypeError) as e:
            m(bad)
        assert needle in str(e.value)


# ---- 5. specs ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "specs, needle",
    [
        ([{"name": "x", "dims": [1, 3, 100000, 100000]}], "The inputs need 120.0 GB"),
        ([{"name": "x", "dims": [1, 3]}, {"name": "x", "dims": [1, 3]}], "are both named 'x'"),
        ([{"name": "ids", "dims": [2], "dtype": "int64", "range": [0.5, 10.2]}], "int64 input takes whole-number bounds"),
        ([{"name": "x", "dims": [2], "dtype": ["float32"]}], "dtype ['float32'] is not supported"),
        ([{"name": "x", "dims": [{"name": "b", "min": "1"}]}], "needs whole numbers for min and max"),
        ([{"name": "x", "dims": [2], "range": ["a", 1]}], "two finite numbers"),
        ([{"name": "x", "dims": [2], "dtype": "bool", "range": [0, 1]}], "a bool input takes no range"),
    ],
)
def test_bad_specs_are_refused_with_a_sentence(specs, needle):
    with pytest.raises(EngineError) as e:
        parse_specs(specs)
    assert needle in e.value.message and e.value.message.endswith(".")


def test_huge_spec_is_refused_before_anything_is_allocated(tmp_path):
    import psutil

    path = str(tmp_path / "m.pt")
    torch.jit.save(torch.jit.trace(Scale(), torch.randn(2, 8)), path)
    before = psutil.Process().memory_info().rss
    with pytest.raises(EngineError) as e:
        compile_model({"model": path, "inputs": [{"name": "x", "dims": [1, 3, 100000, 100000]}], "measure": False}, JobContext("t"))
    assert "120.0 GB" in e.value.message
    assert psutil.Process().memory_info().rss - before < 500e6


# ---- 6. engine RPC -------------------------------------------------------------------------------

def test_malformed_rpc_requests_get_replies_and_the_engine_keeps_running():
    lines = [
        '{"id": [1], "method": "versions"}',  # unhashable id
        '{"id": {"a": 1}, "method": "versions"}',
        '{"id": "a", "method": "inspect", "params": [1, 2]}',  # list params
        '[1, 2, 3]',  # not an object
        '"just a string"',
        'not json at all',
        '[' * 100000,  # deeply nested: RecursionError inside json
        '{"id": "b", "method": 5}',
        '{"id": "c", "method": "cancel", "params": {"job": [1]}}',
        '{"id": "d", "method": "compile", "params": {"model": 12, "inputs": []}}',
        '{"id": "e", "method": "compile", "params": {"_database": "x"}}',
        '{"id": "f", "method": "no_such_method"}',
        '{"id": "g", "method": "inspect", "params": {"model": "/no/such/file.pt"}}',
        '{"id": "h", "method": "compile", "params": {"model": "m.pt", "threads": true}}',
        '{"id": "z", "method": "versions"}',
    ]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "native", "engine"))
    proc = subprocess.Popen([sys.executable, "-m", "torchtvm.service"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    proc.stdin.write(("\n".join(lines) + "\n").encode() + b"\xff\xfe{\n")  # and a line that is not UTF-8
    proc.stdin.flush()
    replies = []
    try:
        while len(replies) < len(lines) + 1:
            line = proc.stdout.readline()
            assert line, f"the engine stopped after {len(replies)} replies"
            msg = json.loads(line)
            if "event" not in msg:
                replies.append(msg)
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    by_id = {r["id"]: r for r in replies if r["id"] is not None}
    assert "result" in by_id["z"] and "torch" in by_id["z"]["result"]
    assert by_id["c"]["result"] == {"cancelled": False}
    for r in replies:
        if "error" in r:
            err = r["error"]
            assert err["code"] != "internal", err
            assert err["message"].rstrip().endswith(".") and "Traceback" not in err["message"], err["message"]
    assert by_id["a"]["error"]["code"] == "bad_request" and "must be a JSON object" in by_id["a"]["error"]["message"]
    assert "must be a file path" in by_id["d"]["error"]["message"]
    assert "is internal" in by_id["e"]["error"]["message"]


# ---- 4. tuning database repair --------------------------------------------------------------------

def _db(tmp_path, workloads, records):
    from torchtvm.tune.database import RECORD_FILE, WORKLOAD_FILE

    (tmp_path / WORKLOAD_FILE).write_text("".join(l + "\n" for l in workloads))
    (tmp_path / RECORD_FILE).write_text("".join(l + "\n" for l in records))
    return tmp_path / WORKLOAD_FILE, tmp_path / RECORD_FILE


def _rec(i, secs):
    return json.dumps([i, [["trace"], [secs], {"kind": "llvm"}, []]])


def test_mid_file_workload_damage_keeps_every_good_record(tmp_path):
    from torchtvm.tune.database import repair

    workloads = ['["h0", "m0"]', '["h1", "m1"', '["h2", "m2"]', '["h3", "m3"]']  # line 1 damaged
    records = [_rec(0, 0.1), _rec(2, 0.2), _rec(1, 0.3), _rec(3, 0.4), _rec(2, 0.5), "torn [", _rec(9, 0.6)]
    wpath, rpath = _db(tmp_path, workloads, records)
    report = repair(str(tmp_path))
    new_w = [json.loads(l) for l in wpath.read_text().splitlines()]
    new_r = [json.loads(l) for l in rpath.read_text().splitlines()]
    # every record whose workload is intact is kept, and still points at the same workload hash
    assert [(new_w[r[0]][0], r[1][1][0]) for r in new_r] == [("h0", 0.1), ("h2", 0.2), ("h3", 0.4), ("h2", 0.5)]
    assert report["renumbered_records"] == 3 and report["orphaned_records"] == 2 and report["dropped_records"] == 1
    assert "Dropped 1 damaged workload line(s), 2 record(s) of those damaged workloads, 1 damaged record line(s)" in report["message"]
    assert "every other record was kept" in report["message"]
    # nothing is destroyed: the originals are kept beside
    assert os.path.exists(os.path.join(report["backup"], "database_tuning_record.json"))
    assert repair(str(tmp_path))["dropped_lines"] == 0


def test_repair_refuses_a_file_that_is_not_a_database(tmp_path):
    from torchtvm.tune.database import repair

    wpath, rpath = _db(tmp_path, ["hello", "world", "not", '["h", "m"]'], [_rec(0, 0.1)])
    before = (wpath.read_text(), rpath.read_text())
    with pytest.raises(EngineError) as e:
        repair(str(tmp_path))
    assert "not a usable MetaSchedule database; nothing was changed" in e.value.message
    assert (wpath.read_text(), rpath.read_text()) == before


def test_repair_killed_between_its_renames_is_completed(tmp_path):
    from torchtvm.tune.database import _REPAIR_JOURNAL, repair

    wpath, rpath = _db(tmp_path, ['["h0", "m0"]'], [_rec(0, 0.1)])
    tmp_r = str(rpath) + ".repair-1"
    with open(tmp_r, "w") as f:
        f.write(_rec(0, 0.7) + "\n")
    (tmp_path / _REPAIR_JOURNAL).write_text(json.dumps([[tmp_r, str(rpath)]]))
    repair(str(tmp_path))
    assert json.loads(rpath.read_text())[1][1] == [0.7] and not (tmp_path / _REPAIR_JOURNAL).exists()


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return torch.relu(self.fc(x))


def test_size_one_dims_with_odd_strides_run_like_contiguous_inputs(tmp_path):
    # torch calls x.t() of an [8, 1] tensor contiguous, with strides (1, 1): library kernels and
    # generated code must both see it as the dense [1, 8] tensor it is
    out = str(tmp_path / "mlp_tvm.pt")
    torch.manual_seed(0)
    module = Mlp().eval()
    run = _compile_run(str(tmp_path), module, (torch.randn(2, 8),), [{"name": "x", "dims": [{"name": "batch", "min": 1, "max": 4}, 8]}], export_path=out, edge_values=False)
    r = run.result
    x = torch.randn(8, 1).t()
    assert x.is_contiguous() and x.stride() == (1, 1)
    runtime.load_library()
    torch.testing.assert_close(torch.jit.load(out)(x), module(x))
    torch.testing.assert_close(TvmRunner(run.built.executable).run([x])[0], module(x))


def test_partly_compiled_models_get_the_edge_value_pass_and_serialise(tmp_path):
    from _zoo_models import Unsupported

    torch.manual_seed(0)
    r = _compile(str(tmp_path), Unsupported(), (torch.randn(2, 16),), [{"name": "x", "dims": [2, 16]}], fallback=True)
    assert "fallback" in r and r["verification"]["ok"]
    ev = r["verification"]["edge_values"]
    assert [c["case"] for c in ev["cases"]] == ["nan", "inf", "negative_zero", "zeros", "huge", "tiny"]
    json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, allow_nan=False, default=str)
