"""Helpers shared by the export / seed API / C++ runtime tests: tiny models compiled once per
session, fresh-interpreter runs, and surgery on a saved .pt's pickled state."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile

import torch
import torch.nn as nn

from torchtvm.common import runtime_library as runtime
from torchtvm.common.progress import JobContext
from torchtvm.pipeline.compile import compile_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TwoInputs(nn.Module):
    def forward(self, a, b):
        return a * 2 + b.sum(dim=1, keepdim=True)


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.fc(x)
        return y.softmax(-1), y.max(dim=-1).values


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


class SmallConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class ConvBlock(nn.Module):
    """Convolutions the library takes (BatchNorm, residual add, relu6, depthwise) and a linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.stem(x)))
        y = torch.relu(self.conv(y) + y)
        y = nn.functional.relu6(self.dw(y))
        return self.fc(y.mean((2, 3)))


class Half(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 8)

    def forward(self, x):
        return torch.relu(self.fc(x))


BATCH = {"name": "batch", "min": 1, "max": 8}

# name -> (module factory, example inputs, input specs, call shapes used in the round trip)
MODELS = {
    "multi_input": (TwoInputs, lambda: (torch.randn(2, 4), torch.randn(2, 3)),
                    [{"name": "a", "dims": [BATCH, 4], "dtype": "float32"}, {"name": "b", "dims": [BATCH, 3], "dtype": "float32"}]),
    "multi_output": (TwoOutputs, lambda: (torch.randn(2, 8),), [{"name": "x", "dims": [2, 8], "dtype": "float32"}]),
    "int64": (Embed, lambda: (torch.randint(0, 100, (2, 5)),), [{"name": "ids", "dims": [2, 5], "dtype": "int64", "range": [0, 100]}]),
    "conv_library": (ConvBlock, lambda: (torch.randn(2, 3, 8, 8),), [{"name": "x", "dims": [BATCH, 3, 8, 8], "dtype": "float32"}]),
    "float16": (lambda: Half().half(), lambda: (torch.randn(2, 16).half(),), [{"name": "x", "dims": [2, 16], "dtype": "float16"}]),
}


def save_torchscript(module, example, path) -> str:
    torch.manual_seed(0)
    ts = torch.jit.trace(module.eval(), example)
    torch.jit.save(ts, path)
    return path


def compile_and_export(name: str, folder: str) -> dict:
    """Compile MODELS[name] and export it; returns the compile result (without private keys)."""
    factory, example, specs = MODELS[name]
    torch.manual_seed(0)
    os.makedirs(folder, exist_ok=True)
    model = save_torchscript(factory(), example(), os.path.join(folder, f"{name}.pt"))
    out = os.path.join(folder, "build")
    params = {"model": model, "inputs": specs, "out_dir": out, "measure": False, "export_path": os.path.join(folder, f"{name}_tvm.pt")}
    result = compile_model(params, JobContext("test"))
    return {k: v for k, v in result.items() if not k.startswith("_")}


def run_fresh(code: str, env_extra: dict | None = None, cwd: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Python code in a new interpreter (only what the code imports is loaded)."""
    env = dict(os.environ)
    env.pop("TORCHTVM_RUNTIME_LIB", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=timeout)


def rewrite_state(src: str, dst: str, fn) -> None:
    """Copy a .pt, applying fn(bytes) -> bytes to its pickled state (archive/data.pkl)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl") and info.filename.count("/") == 1:
                data = fn(data)
            zout.writestr(info, data)


def replace_pickled_str(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace a whole BINUNICODE string inside a pickle that contains `old` as a substring."""
    i = data.find(old)
    assert i >= 0, "string not found in the pickle"
    # walk back to the opcode: 'X' + 4-byte little-endian length
    for start in range(i - 5, max(-1, i - 5 - 10_000_000), -1):
        if data[start:start + 1] == b"X":
            (n,) = struct.unpack("<I", data[start + 1:start + 5])
            # An "X" inside the text (a temp path's random letters) reads as a length past the end.
            if start + 5 <= i and i + len(old) <= start + 5 + n <= len(data):
                s = data[start + 5:start + 5 + n]
                s2 = s.replace(old, new)
                return data[:start] + b"X" + struct.pack("<I", len(s2)) + s2 + data[start + 5 + n:]
    raise AssertionError("no BINUNICODE opcode before the string")


def reseal(data: bytes) -> bytes:
    """A pickled state whose metadata was edited, with the metadata's digest computed again (as a
    deliberate editor would: what the runtime must still survive)."""
    import hashlib
    import re

    m = re.search(rb'"integrity_sha256": "([0-9a-f]{64})"', data)
    assert m, "no metadata digest in the pickle"
    # the metadata is the BINUNICODE string around the digest
    start = data.rfind(b"X", 0, m.start())
    while True:
        (n,) = struct.unpack("<I", data[start + 1:start + 5])
        # (an "X" inside the text, such as a temp path's random letters, reads as a length past the end)
        if m.end() <= start + 5 + n <= len(data):
            break
        start = data.rfind(b"X", 0, start)
    text = data[start + 5:start + 5 + n]
    zeroed = text.replace(m.group(1), b"0" * 64)
    digest = hashlib.sha256(zeroed).hexdigest().encode()
    return data[:start + 5] + text.replace(m.group(1), digest) + data[start + 5 + n:]


def host_cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def runtime_lib() -> str:
    return runtime.library_path()


def rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
