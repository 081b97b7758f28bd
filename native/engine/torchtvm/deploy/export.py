"""The deployable artifact: a TorchScript module whose forward calls torch.classes.torchtvm.Module.

The custom class (native/runtime, libtorchtvm_runtime.so) pickles the compiled library bytes, their
SHA-256 and the metadata, so the saved `.pt` is all a deployment needs besides the runtime library:

    m = export.exported_module(executable, info, specs, num_outputs)   # scriptable nn.Module
    export.save_exported("model_tvm.pt", executable, info, specs, num_outputs)

Two calling conventions, recorded in the metadata as "calling_convention":

- "model" (every export the CLI and the app write): a drop-in replacement for the model the user
  brought: `forward` takes the model's own arguments (tensors, by the model's names) and returns the
  model's own output structure (a tensor, or nested tuples/lists of tensors), e.g. `y = m(x)`.
  Pass `signature` (verify.reference.model_signature) to get it.
- "list" (the seed API `torchtvm.compile`, and every export written before the key existed, which
  lack it): `forward(List[Tensor]) -> List[Tensor]`, e.g. `(y,) = m([x])`.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import linecache
import os
import tempfile
from typing import Any, List, Tuple

import torch

from torchtvm.backend.build import export_library
from torchtvm.common import runtime_library as runtime
from torchtvm.common.cpu_features import missing_on_host
from torchtvm.common.errors import EngineError
from torchtvm.deploy.builds import write_bytes_atomic

FORMAT_VERSION = 2  # the runtime reads versions up to its own; new metadata keys need no bump
# (2: the metadata carries its own digest, integrity_sha256, which the runtime requires)
_UNSEALED = "0" * 64
# Name of the attribute holding the custom-class object; runtime.exported_metadata looks for it.
ATTR = "torchtvm_module"
# metadata["calling_convention"]: absent (every export older than the key) means "list".
LIST_CONVENTION, MODEL_CONVENTION = "list", "model"


def _require_runtime() -> None:
    if not runtime.load_library():
        raise EngineError(
            "runtime_missing",
            f"The TorchTVM runtime library is not built ({runtime.library_path()} is missing); run `.venv/bin/python native/runtime/build.py`.",
        )


def library_bytes(library) -> bytes:
    """The shared-library bytes of a compiled executable, or of an exported `.so` path."""
    if isinstance(library, (str, os.PathLike)):
        with open(library, "rb") as f:
            return f.read()

    with tempfile.TemporaryDirectory(prefix="torchtvm-export-") as d:
        path = export_library(library, os.path.join(d, "model.so"))
        with open(path, "rb") as f:
            return f.read()


def _versions() -> dict:
    out: dict[str, str] = {"torch": str(torch.__version__)}
    try:
        import tvm

        out["tvm"] = tvm.__version__
    except Exception:  # pragma: no cover - metadata only
        pass
    try:
        import tvm_ffi

        out["tvm_ffi"] = tvm_ffi.__version__
    except Exception:  # pragma: no cover
        pass
    return out


def make_metadata(lib: bytes, info, specs, num_outputs: int, extra: dict | None = None) -> dict:
    """`info` is a builder.TargetInfo (or its to_json() dict); `specs` InputSpecs or their JSON."""
    target = info.to_json() if hasattr(info, "to_json") else dict(info)
    kind = target.get("kind", "llvm")
    meta = {
        "format_version": FORMAT_VERSION,
        "producer": "torchtvm",
        "versions": _versions(),
        "target": target,
        "device": "cuda" if kind == "cuda" else "cpu",
        "cpu_features": list(target.get("features") or []),
        "inputs": [s.to_json() if hasattr(s, "to_json") else dict(s) for s in specs],
        "num_outputs": int(num_outputs),
        "library_sha256": hashlib.sha256(lib).hexdigest(),
        "library_bytes": len(lib),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "calling_convention": LIST_CONVENTION,
    }
    if extra:
        meta.update(extra)
    return meta


def seal_metadata(meta: dict) -> str:
    """The metadata as the export stores it: JSON text carrying its own SHA-256, computed over the
    text with that value zeroed (the runtime checks it the same way, runtime.cc MetadataDigest).
    With the library's SHA-256 inside, this binds the whole export: an edit of either is refused."""
    text = json.dumps({**meta, "integrity_sha256": _UNSEALED})
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text.replace(f'"integrity_sha256": "{_UNSEALED}"', f'"integrity_sha256": "{digest}"', 1)


def make_runtime_object(lib: bytes, meta: dict):
    """The torch.classes.torchtvm.Module holding (and already loading) the compiled code."""
    _require_runtime()
    data = torch.frombuffer(bytearray(lib), dtype=torch.uint8) if lib else torch.empty(0, dtype=torch.uint8)
    if _built_for_another_cpu(meta):
        # Code for a CPU this one is not: hold it for saving, never load it here (SIGILL).
        return torch.classes.torchtvm.Module.for_export(seal_metadata(meta), data)
    return torch.classes.torchtvm.Module(seal_metadata(meta), data)


def _built_for_another_cpu(meta: dict) -> bool:
    return bool(missing_on_host(meta.get("cpu_features") or []))


class TVMModule(torch.nn.Module):
    """Scriptable wrapper: forward(List[Tensor]) -> List[Tensor] through the TVM runtime op.

    Moving it to the device it was built for is accepted; any other device is refused with a
    sentence (the code inside is compiled for one device)."""

    def __init__(self, runtime_object, device: str = "cpu"):
        super().__init__()
        setattr(self, ATTR, runtime_object)
        self.build_device = device

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if not torch.jit.is_scripting():
            # In Python, say what is wrong with the argument before torch's binding error does.
            _check_call(inputs)
        return self.torchtvm_module.forward(inputs)  # type: ignore[union-attr]

    @torch.jit.unused
    def metadata(self) -> dict:
        return json.loads(getattr(self, ATTR).metadata())

    @torch.jit.unused
    def _check_device(self, device) -> None:
        if device is None:
            return
        dev = torch.device(device)
        if dev.type != torch.device(self.build_device).type:
            raise RuntimeError(
                f"This TVM module was compiled for {self.build_device} and cannot move to {dev}; "
                f"recompile it for that device (target {'cuda' if dev.type == 'cuda' else 'llvm'}) instead."
            )

    @torch.jit.unused
    def to(self, *args, **kwargs):  # noqa: D401 - nn.Module API
        device, _dtype, _non_blocking, _fmt = torch._C._nn._parse_to(*args, **kwargs)
        self._check_device(device)
        return self

    @torch.jit.unused
    def cuda(self, device=None):
        self._check_device("cuda" if device is None else torch.device("cuda", device) if isinstance(device, int) else device)
        return self

    @torch.jit.unused
    def cpu(self):
        self._check_device("cpu")
        return self


def _check_call(inputs) -> None:
    if isinstance(inputs, torch.Tensor) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"A TVM module takes a list of tensors, e.g. m([x]), not a {type(inputs).__name__}.")
    for i, t in enumerate(inputs):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"Input {i} of the list is a {type(t).__name__}, not a tensor; pass tensors only, e.g. m([x]).")


def _check_args(names: List[str], values: List[torch.Tensor]) -> None:
    for name, t in zip(names, values):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"Argument {name} is a {type(t).__name__}, not a tensor; this compiled model takes the model's own tensor arguments ({', '.join(names)}).")


# ---- the drop-in wrapper: the model's arguments in, the model's output structure out -------------

def _structure_type(tree) -> str:
    """The TorchScript type of an output_structure tree."""
    if isinstance(tree, int):
        return "Tensor"
    kind, children = next(iter(tree.items()))
    types = [_structure_type(c) for c in children]
    if kind == "list":
        if not types:
            return "List[Tensor]"
        if len(set(types)) == 1:
            return f"List[{types[0]}]"
        # A list of mixed element types has no TorchScript type: it comes back as a tuple.
    return f"Tuple[{', '.join(types)}]" if types else "Tuple[()]"


def _structure_expr(tree, flat: str) -> str:
    """The expression rebuilding an output_structure tree from the flat output list `flat`."""
    if isinstance(tree, int):
        return f"{flat}[{tree}]"
    kind, children = next(iter(tree.items()))
    parts = [_structure_expr(c, flat) for c in children]
    if kind == "list" and len({_structure_type(c) for c in children}) <= 1:
        return f"torch.jit.annotate({_structure_type(tree)}, [{', '.join(parts)}])"
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _leaves(tree) -> list[int]:
    if isinstance(tree, int):
        return [tree]
    return [i for c in next(iter(tree.values())) for i in _leaves(c)]


_classes: dict[str, type] = {}


def model_convention_class(arguments: list[str], outputs) -> type:
    """A TVMModule subclass whose forward takes `arguments` (tensors, by those names) and returns
    the `outputs` structure (verify.reference.output_structure), calling the same runtime object.

    Its source is generated and registered with linecache (as torch.fx does), so torch.jit.script
    reads it like any other; one class per signature, so scripting never mangles its name."""
    for a in arguments:
        if not (isinstance(a, str) and a.isidentifier()):
            raise ValueError(f"{a!r} cannot be an argument name")
    args = ", ".join(f"{a}: Tensor" for a in arguments)
    values = "[" + ", ".join(arguments) + "]"
    src_body = (
        f"    def forward(self, {args}) -> {_structure_type(outputs)}:\n"
        f"        if not torch.jit.is_scripting():\n"
        f"            _check_args({arguments!r}, {values})\n"
        f"        _torchtvm_outputs = self.{ATTR}.forward({values})\n"
        f"        return {_structure_expr(outputs, '_torchtvm_outputs')}\n"
    )
    digest = hashlib.sha256(src_body.encode()).hexdigest()[:12]
    name = f"TVMModule_{digest}"
    known = _classes.get(name)
    if known is not None:
        return known
    src = f"class {name}(TVMModule):\n" \
          f'    """A compiled model called as the model was: {", ".join(arguments) or "no arguments"} in, its output structure out."""\n\n' + src_body
    filename = f"<torchtvm-export-{digest}>"
    lines = src.splitlines(keepends=True)
    linecache.cache[filename] = (len(src), None, lines, filename)  # mtime None: never checked on disk
    namespace: dict[str, Any] = {"__name__": __name__, "torch": torch, "Tensor": torch.Tensor, "List": List, "Tuple": Tuple, "TVMModule": TVMModule, "_check_args": _check_args}
    exec(compile(src, filename, "exec"), namespace)  # noqa: S102 - our own generated source
    cls: type = namespace[name]
    _classes[name] = cls
    return cls


def exported_module(library, info, specs, num_outputs: int, extra_metadata: dict | None = None, signature: dict | None = None) -> TVMModule:
    """An nn.Module (scriptable, traceable) running the compiled library through the runtime op.

    `library`: a Relax executable or the path of its exported `.so`. Without `signature` it is the
    seed's TVMModule (`m([x])` -> list of tensors); with one ({"arguments": [names], "outputs":
    output_structure}, verify.reference.model_signature) it is a drop-in replacement for the model:
    `m(x, y)` -> what the model returns."""
    lib = library_bytes(library)
    extra = dict(extra_metadata or {})
    cls: type = TVMModule
    if signature is not None:
        arguments, outputs = list(signature["arguments"]), signature["outputs"]
        if sorted(_leaves(outputs)) != list(range(int(num_outputs))):
            raise EngineError("export_failed", f"The model's output structure holds {len(_leaves(outputs))} tensors but the compiled model returns {num_outputs}; nothing was written.")
        if len(arguments) != len(specs):
            raise EngineError("export_failed", f"The model takes {len(arguments)} argument(s) ({', '.join(arguments)}) but {len(specs)} input(s) were compiled; nothing was written.")
        cls = model_convention_class(arguments, outputs)
        extra.update({"calling_convention": MODEL_CONVENTION, "arguments": arguments, "output_structure": outputs})
    meta = make_metadata(lib, info, specs, num_outputs, extra)
    return cls(make_runtime_object(lib, meta), meta["device"])


def save_scripted(module: torch.jit.ScriptModule, path: str) -> str:
    """torch.jit.save to `path` atomically (builds.write_bytes_atomic): on failure (e.g. the disk is
    full) no partial file is left behind."""
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    return write_bytes_atomic(path, buf.getvalue())


def save_exported(path: str, library, info, specs, num_outputs: int, extra_metadata: dict | None = None, signature: dict | None = None) -> str:
    """Write the deployable `.pt` (scripted TVMModule, or with `signature` the model's own calling
    convention: exported_module) to `path`, atomically."""
    module = exported_module(library, info, specs, num_outputs, extra_metadata, signature)
    return save_scripted(torch.jit.script(module), path)
