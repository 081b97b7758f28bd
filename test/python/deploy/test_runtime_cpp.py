"""The C++ example (libtorch + libtorchtvm_runtime.so, no Python) loads an exported .pt and runs it."""

import os
import shutil
import subprocess

import pytest
import torch

from _export_helpers import REPO, compile_and_export, runtime_lib


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cpp_example_builds_and_runs(tmp_path):
    result = compile_and_export("multi_input", str(tmp_path / "model"))
    library = str(tmp_path / "model.so")
    shutil.copy(result["files"]["library"], library)
    result["files"]["library"] = library
    shutil.rmtree(tmp_path / "model" / "build")
    build = tmp_path / "example-build"
    torch_dir = os.path.dirname(torch.__file__)
    cfg = ["cmake", "-S", os.path.join(REPO, "native", "runtime", "examples"), "-B", str(build),
           f"-DTORCH_DIR={torch_dir}", f"-DTORCHTVM_RUNTIME_LIB={runtime_lib()}",
           f"-DTORCH_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    if shutil.which("ninja"):
        cfg += ["-G", "Ninja"]
    subprocess.run(cfg, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 1)], check=True, capture_output=True)
    exe = str(build / "run_exported")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    pt = result["files"]["exported"]
    for batch in (1, 6):
        proc = subprocess.run([exe, pt, f"{batch}x4", f"{batch}x3"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"output 0: [{batch}, 4] Float" in proc.stdout
    # the seed API's list convention (and every export older than "calling_convention") still runs
    from torchtvm.deploy import export
    seed = export.exported_module(result["files"]["library"], result["target"], result["inputs"], result["num_outputs"])
    seed_pt = export.save_scripted(torch.jit.script(seed), str(tmp_path / "seed_list.pt"))
    proc = subprocess.run([exe, seed_pt, "3x4", "3x3"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "output 0: [3, 4] Float" in proc.stdout
    # a model returning a tuple: forward gives the tuple back, its tensors in order
    pair = compile_and_export("multi_output", str(tmp_path / "pair"))
    proc = subprocess.run([exe, pair["files"]["exported"], "2x8"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "output 0: [2, 4] Float\noutput 1: [2] Float\n" in proc.stdout, proc.stdout
    # a model whose convolutions and linear run in the library kernels (oneDNN / MKL), prepacked
    conv = compile_and_export("conv_library", str(tmp_path / "conv"))
    assert conv["placement"]["library_ops"] >= 3
    for batch in (1, 8):
        proc = subprocess.run([exe, conv["files"]["exported"], f"{batch}x3x8x8"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"output 0: [{batch}, 5] Float" in proc.stdout
    # a wrong shape is reported as an error, not a crash
    proc = subprocess.run([exe, pt, "2x5", "2x3"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "dimension 1 must be 4, got 5" in proc.stderr
    # a malformed input or flag is a usage error (exit 2) with a sentence, never an abort (exit 134)
    for args, words in (
        (["2xabc"], '"abc" is not a size'),
        (["2x-1"], '"-1" is not a size'),
        (["2x3:float64"], 'dtype "float64" is not supported'),
        (["2x4", "2x3", "--runs", "many"], "--runs needs a positive integer"),
        ([], "no input given"),
    ):
        proc = subprocess.run([exe, pt, *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert proc.stderr.startswith("error: ") and words in proc.stderr, proc.stderr
        assert "terminate called" not in proc.stderr and "frame #" not in proc.stderr
