"""Build libtorchtvm_runtime.so with CMake against the installed torch, tvm and tvm_ffi wheels.

    .venv/bin/python native/runtime/build.py [--debug] [--jobs N]

The library lands in native/engine/torchtvm/lib/ (where torchtvm.runtime looks for it); the CMake
build folder is native/runtime/build/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUTPUT_DIR = os.path.join(REPO, "native", "engine", "torchtvm", "lib")
LIB_NAME = "libtorchtvm_runtime.so"


def package_dirs() -> dict[str, str]:
    """Paths of the installed wheels, found without importing TVM's compiler."""
    import importlib.util

    import torch

    def pkg_dir(name: str) -> str:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"build.py: the Python package {name!r} is not installed in {sys.executable}; run the setup script first.")
        return list(spec.submodule_search_locations)[0]

    return {
        "TORCH_DIR": os.path.dirname(torch.__file__),
        "TORCH_CXX11_ABI": "1" if torch._C._GLIBCXX_USE_CXX11_ABI else "0",
        "TVM_LIB_DIR": os.path.join(pkg_dir("tvm"), "lib"),
        "TVM_FFI_DIR": pkg_dir("tvm_ffi"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--build-dir", default=os.path.join(HERE, "build"))
    ap.add_argument("--output-dir", default=OUTPUT_DIR)
    args = ap.parse_args(argv)

    if shutil.which("cmake") is None:
        sys.exit("build.py: cmake is not on PATH; install cmake (apt-get install cmake or pip install cmake).")
    defs = package_dirs()
    defs["OUTPUT_DIR"] = os.path.abspath(args.output_dir)
    defs["CMAKE_BUILD_TYPE"] = "Debug" if args.debug else "Release"
    os.makedirs(args.build_dir, exist_ok=True)
    os.makedirs(defs["OUTPUT_DIR"], exist_ok=True)
    cfg = ["cmake", "-S", HERE, "-B", args.build_dir] + [f"-D{k}={v}" for k, v in defs.items()]
    if shutil.which("ninja"):
        if not os.path.exists(os.path.join(args.build_dir, "CMakeCache.txt")):
            cfg += ["-G", "Ninja"]
    subprocess.run(cfg, check=True)
    subprocess.run(["cmake", "--build", args.build_dir, "-j", str(args.jobs)], check=True)
    out = os.path.join(defs["OUTPUT_DIR"], LIB_NAME)
    if not os.path.exists(out):
        sys.exit(f"build.py: the build finished but {out} is missing.")
    print(f"built {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
