"""Loading checks on a deployable .pt (hash, CPU features, format version) and atomic export.

Each damaged file must fail to load with a sentence (a torch error), never a crash: the loads run
in a fresh interpreter so a crash would show as a signal, not a pass."""

import errno
import os

import pytest
import torch

from _export_helpers import compile_and_export, host_cpu_flags, replace_pickled_str, rewrite_state, run_fresh

# LLVM names of features generated code may need (builder._CHECKED_FEATURES) with /proc/cpuinfo names.
CANDIDATES = {"avx512f": "avx512f", "avx512bw": "avx512bw", "avx512vnni": "avx512_vnni", "avx512fp16": "avx512_fp16", "amx-tile": "amx_tile", "avx512bf16": "avx512_bf16"}


@pytest.fixture(scope="module")
def pt(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("checks"))
    return compile_and_export("multi_output", folder)["files"]["exported"]


def load_fresh(path):
    proc = run_fresh(f"""
        import torch, torchtvm
        try:
            m = torch.jit.load({path!r})
        except Exception as e:
            print("LOAD-ERROR:", type(e).__name__, e)
        else:
            print("LOADED", len(m(torch.randn(2, 8))))  # the model returns (softmax, max)
    """)
    assert proc.returncode == 0, f"crashed (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


def test_intact_file_loads(pt):
    assert "LOADED 2" in load_fresh(pt)


def test_flipped_byte_in_library_fails_the_hash_check(pt, tmp_path):
    def flip(data):
        i = data.find(b"\x7fELF")
        assert i > 0
        j = i + 4096 + 7
        return data[:j] + bytes([data[j] ^ 0x01]) + data[j + 1:]

    bad = str(tmp_path / "flipped.pt")
    rewrite_state(pt, bad, flip)
    out = load_fresh(bad)
    assert "LOAD-ERROR" in out
    assert "The compiled library embedded in this model is corrupted: its SHA-256 is" in out


def test_missing_cpu_feature_is_named(pt, tmp_path):
    flags = host_cpu_flags()
    missing = [llvm for llvm, cpuinfo in CANDIDATES.items() if cpuinfo not in flags]
    if not missing:
        pytest.skip("this CPU has every candidate feature")
    feat = missing[0]
    bad = str(tmp_path / "feature.pt")
    rewrite_state(pt, bad, lambda d: replace_pickled_str(d, b'"cpu_features": [', f'"cpu_features": ["{feat}", '.encode()))
    out = load_fresh(bad)
    assert "LOAD-ERROR" in out
    assert f"needs the CPU feature {feat}, which this CPU does not have" in out


def test_newer_format_version_is_refused_with_both_versions(pt, tmp_path):
    bad = str(tmp_path / "newer.pt")
    rewrite_state(pt, bad, lambda d: replace_pickled_str(d, b'"format_version": 1,', b'"format_version": 7,'))
    out = load_fresh(bad)
    assert "LOAD-ERROR" in out
    assert "exported in torchtvm format version 7, but this runtime reads format versions up to 1" in out


def test_out_of_disk_leaves_no_partial_file(pt, tmp_path, monkeypatch):
    from torchtvm.deploy import export
    from torchtvm.common.errors import EngineError

    m = torch.jit.load(pt)
    dest = tmp_path / "out" / "model_tvm.pt"

    def full(f, data):
        f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export, "_write_bytes", full)
    with pytest.raises(EngineError) as e:
        export.save_scripted(m, str(dest))
    assert e.value.code == "export_failed" and "No space left on device" in e.value.message
    assert os.listdir(dest.parent) == []
    # an existing file at the destination is left untouched by a failed export
    dest.write_bytes(b"previous")
    with pytest.raises(EngineError):
        export.save_scripted(m, str(dest))
    assert dest.read_bytes() == b"previous" and os.listdir(dest.parent) == ["model_tvm.pt"]
    monkeypatch.undo()
    export.save_scripted(m, str(dest))
    assert len(torch.jit.load(str(dest))(torch.randn(2, 8))) == 2
