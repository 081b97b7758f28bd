"""Loading checks on a deployable .pt (hash, CPU features, format version) and atomic export.

Each damaged file must fail to load with a sentence (a torch error), never a crash: the loads run
in a fresh interpreter so a crash would show as a signal, not a pass."""

import errno
import os
import struct
import subprocess

import pytest
import torch

from _export_helpers import compile_and_export, host_cpu_flags, replace_pickled_str, reseal, rewrite_state, run_fresh

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
    # an export for another CPU (its digest matches: written so, not edited)
    rewrite_state(pt, bad, lambda d: reseal(replace_pickled_str(d, b'"cpu_features": [', f'"cpu_features": ["{feat}", '.encode())))
    out = load_fresh(bad)
    assert "LOAD-ERROR" in out
    assert f"needs the CPU feature {feat}, which this CPU does not have" in out


def test_newer_format_version_is_refused_with_both_versions(pt, tmp_path):
    bad = str(tmp_path / "newer.pt")
    rewrite_state(pt, bad, lambda d: replace_pickled_str(d, b'"format_version": 2,', b'"format_version": 7,'))
    out = load_fresh(bad)
    assert "LOAD-ERROR" in out
    assert "exported in torchtvm format version 7, but this runtime reads format versions up to 2" in out


def test_out_of_disk_leaves_no_partial_file(pt, tmp_path, monkeypatch):
    from torchtvm.deploy import builds, export
    from torchtvm.common.errors import EngineError

    m = torch.jit.load(pt)
    dest = tmp_path / "out" / "model_tvm.pt"

    def full(f, data):
        f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(builds, "_write_bytes", full)
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


# ---- crafted files (issue 23): whatever the edit, a sentence, never a signal ----------------------


def _edit_library(data: bytes, fn) -> bytes:
    """The pickled state with its library bytes replaced by fn(library), and the library's hash,
    size and the metadata's digest computed again: an edit made to get past every hash."""
    import hashlib
    import re

    i = data.find(b"\x7fELF")
    if data[i - 5:i - 4] in (b"B", b"X"):  # BINBYTES, or BINUNICODE (TorchScript's std::string)
        op = data[i - 5:i - 4]
        head, n = 5, struct.unpack("<I", data[i - 4:i])[0]
        pack = lambda k: op + struct.pack("<I", k)  # noqa: E731
    else:
        assert data[i - 9:i - 8] == b"\x8e", "the library is not pickled as BINBYTES"
        head, n = 9, struct.unpack("<Q", data[i - 8:i])[0]
        pack = lambda k: b"\x8e" + struct.pack("<Q", k)  # noqa: E731
    lib = data[i:i + n]
    new = fn(lib)
    data = data[:i - head] + pack(len(new)) + new + data[i + n:]
    old_sha = hashlib.sha256(lib).hexdigest().encode()
    data = replace_pickled_str(data, old_sha, hashlib.sha256(new).hexdigest().encode())
    data = re.sub(rb'"library_bytes": \d+', b'"library_bytes": %d' % len(new), data, count=1)
    return reseal(data)


def _no_private_copies(tmpdir: str) -> None:
    left = [n for n in os.listdir(tmpdir) if n.startswith("torchtvm-") and n.endswith(".so")]
    assert left == [], f"private copies of the library left in {tmpdir}: {left}"


def load_fresh_in(path: str, tmpdir: str) -> str:
    proc = run_fresh(f"""
        import os
        os.environ["TMPDIR"] = {tmpdir!r}
        import torch, torchtvm
        try:
            m = torch.jit.load({path!r})
        except Exception as e:
            print("LOAD-ERROR:", type(e).__name__, e)
        else:
            print("LOADED", len(m(torch.randn(2, 8))))
    """)
    assert proc.returncode == 0, f"crashed (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("edit,needle", [
    # delete cpu_features, or drop a feature from it: the metadata's digest no longer matches
    (lambda d: replace_pickled_str(d, b'"cpu_features": [', b'"cpu_featurez": ['), "metadata was modified after export"),
    (lambda d: replace_pickled_str(d, b'"num_outputs": 2', b'"num_outputs": 3'), "metadata was modified after export"),
    # metadata nested 50,000 deep (tvm-ffi's parser recursed until the stack overflowed)
    (lambda d: replace_pickled_str(d, b'"producer": "torchtvm"', b'"producer": ' + b"[" * 50_000 + b"]" * 50_000), "nests deeper than 64 levels"),
    # a truncated library with its hash, size and the metadata's digest computed again (SIGBUS in dlopen)
    (lambda d: _edit_library(d, lambda lib: lib[: len(lib) // 2]), "is cut short"),
    # a library for another architecture, hashes computed again
    (lambda d: _edit_library(d, lambda lib: lib[:18] + struct.pack("<H", 183 if lib[18] == 62 else 62) + lib[20:]), "is for another architecture"),
    (lambda d: _edit_library(d, lambda lib: b"MZ" + lib[2:]), "is not an ELF shared library"),
], ids=["cpu-features-deleted", "num-outputs-edited", "deep-metadata", "truncated-library", "other-arch", "not-elf"])
def test_crafted_exports_are_refused_with_a_sentence_and_leave_no_copy(pt, tmp_path, edit, needle):
    bad = str(tmp_path / "crafted.pt")
    rewrite_state(pt, bad, edit)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = load_fresh_in(bad, str(tmpdir))
    assert "LOAD-ERROR" in out and needle in out, out
    _no_private_copies(str(tmpdir))


def test_a_private_copy_left_by_a_dead_process_is_removed_by_the_next_load(pt, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen(["true"])  # a pid that has exited
    proc.wait()
    stale = tmpdir / f"torchtvm-{proc.pid}-abc123.so"
    stale.write_bytes(b"left behind by a process killed inside dlopen")
    foreign = tmpdir / "torchtvm-notapid.so"  # not ours by name: left alone
    foreign.write_bytes(b"x")
    assert "LOADED 2" in load_fresh_in(pt, str(tmpdir))
    assert not stale.exists() and foreign.exists()


def test_fuzzed_exports_never_kill_the_loader(tmp_path):
    """A chunk of scripts/fuzz_export.py (npm run fuzz:export runs 10,000 cases): mutated metadata
    and libraries, hashes recomputed or not; every case loads or is refused, none raises a signal."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "scripts"))
    import fuzz_export

    r = fuzz_export.run(300, seed=7, folder=str(tmp_path))
    assert r["cases"] == 300 and r["signals"] == 0, r["killed"]
    assert r["refused without a sentence"] == 0 and r["private_copies_left"] == 0
    assert r["refused"] > 100  # the mutations reach the checks
