"""Input specifications: name, dims (numbers or named symbols with a range), dtype, value range.

The same structure travels as JSON between the app, the engine and the exported artifact:
    {"name": "x", "dims": [1, {"name": "batch", "min": 1, "max": 8}, 224], "dtype": "float32",
     "range": [0, 1000]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from torchtvm.common.errors import EngineError

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}
TORCH_TO_NAME = {v: k for k, v in DTYPES.items()}

# Largest size a symbolic dim may take when the user gives no upper bound.
DEFAULT_SYM_MAX = 4096
# Limits that keep a malformed spec from costing more than a sentence.
MAX_RANK = 16
MAX_INPUTS = 1024  # the contract's too (app/contract/jobs.ts MAX_INPUTS)
MAX_DIM = 1 << 40


@dataclass(frozen=True)
class SymDim:
    name: str
    min: int = 1
    max: int = DEFAULT_SYM_MAX

    def sample(self) -> int:
        # torch.export specialises a dim whose sample is 0 or 1, so pick 2 when the range allows.
        return max(self.min, min(2, self.max)) if self.max >= 2 else self.min

    def to_json(self) -> dict:
        return {"name": self.name, "min": self.min, "max": self.max}


Dim = int | SymDim


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple[Dim, ...]
    dtype: str = "float32"
    range: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def sample_shape(self) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else d.sample() for d in self.dims)

    def to_json(self) -> dict:
        out: dict[str, object] = {"name": self.name, "dims": [d if isinstance(d, int) else d.to_json() for d in self.dims], "dtype": self.dtype}
        if self.range is not None:
            out["range"] = list(self.range)
        return out


def _bad(msg: str) -> EngineError:
    return EngineError("bad_input_spec", msg)


def parse_dim(value, where: str) -> Dim:
    if isinstance(value, bool):
        raise _bad(f"{where}: a dimension must be a positive integer or a symbol, not {value!r}.")
    if isinstance(value, int):
        if value < 1:
            raise _bad(f"{where}: dimension {_short(value)} must be at least 1.")
        if value > MAX_DIM:
            raise _bad(f"{where}: dimension {_short(value)} is larger than {MAX_DIM}; no machine holds such a tensor.")
        return value
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"].isidentifier():
        lo, hi = value.get("min", 1), value.get("max", DEFAULT_SYM_MAX)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
            raise _bad(f"{where}: symbol {value['name']} needs whole numbers for min and max, got {lo!r} and {hi!r}.")
        if hi > MAX_DIM:
            raise _bad(f"{where}: symbol {value['name']} has max {_short(hi)}, larger than {MAX_DIM}; give a realistic upper bound.")
        if lo < 1 or hi < lo:
            raise _bad(f"{where}: symbol {value['name']} has an empty range {lo}..{hi}; give 1 <= min <= max.")
        return SymDim(value["name"], lo, hi)
    raise _bad(f"{where}: {_short(value)} is not a dimension; use a positive integer or a symbol like {{\"name\": \"batch\", \"min\": 1, \"max\": 8}}.")


def parse_spec(obj: dict, index: int) -> InputSpec:
    where = f"input {index + 1}"
    if not isinstance(obj, dict):
        raise _bad(f"{where}: expected an object with name, dims and dtype.")
    name = obj.get("name") or f"input{index}"
    if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
        raise _bad(f"{where}: the name must be a short printable string, not {_short(name)}.")
    dims = obj.get("dims")
    if not isinstance(dims, list):
        raise _bad(f"{where} ({name}): dims must be a list.")
    if len(dims) > MAX_RANK:
        raise _bad(f"{where} ({name}): {len(dims)} dimensions is more than the {MAX_RANK} supported.")
    dtype = obj.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise _bad(f"{where} ({name}): dtype {_short(dtype)} is not supported; use one of {', '.join(DTYPES)}.")
    rng = obj.get("range")
    if rng is not None:
        if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(_is_number(v) for v in rng) and rng[0] < rng[1]):
            raise _bad(f"{where} ({name}): range must be [low, high], two finite numbers with low < high.")
        if dtype == "bool":
            raise _bad(f"{where} ({name}): a bool input takes no range (its values are False and True); remove the range.")
        if dtype in ("int64", "int32"):
            if not all(isinstance(v, int) or float(v).is_integer() for v in rng):
                raise _bad(f"{where} ({name}): {dtype} input takes whole-number bounds, not [{rng[0]}, {rng[1]}]; give e.g. [{math.floor(rng[0])}, {math.ceil(rng[1])}].")
            info = torch.iinfo(DTYPES[dtype])
            if rng[0] < info.min or rng[1] > info.max + 1:
                raise _bad(f"{where} ({name}): range [{rng[0]}, {rng[1]}] does not fit {dtype} ({info.min}..{info.max}).")
            rng = (int(rng[0]), int(rng[1]))
        rng = (rng[0], rng[1])
    return InputSpec(name, tuple(parse_dim(d, f"{where} ({name})") for d in dims), dtype, rng)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def input_bytes(specs: list[InputSpec]) -> int:
    """Bytes the sample inputs (static dims as given, symbols at their sample size) take."""
    return sum(math.prod(s.sample_shape()) * DTYPES[s.dtype].itemsize for s in specs)


def available_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is pinned in requirements.lock
        return None


def check_fits(specs: list[InputSpec]) -> None:
    """Refuse, before anything is allocated, inputs the machine cannot hold: verification needs the
    inputs, PyTorch's and TVM's outputs and the activations, so the inputs alone must leave room."""
    need = input_bytes(specs)
    avail = available_memory()
    limit = avail // 4 if avail else 1 << 40
    if need > limit:
        biggest = max(specs, key=lambda s: math.prod(s.sample_shape()) * DTYPES[s.dtype].itemsize)
        shape = list(biggest.sample_shape())
        room = f"this machine has {avail / 1e9:.1f} GB free" if avail else "that is more than the 1 TB the engine allows"
        raise _bad(
            f"The inputs need {need / 1e9:.1f} GB ({biggest.name} alone is {shape} {biggest.dtype}) and {room}; "
            "the model, its outputs and the compiled module's buffers need several times the inputs. Give smaller dimensions."
        )


def parse_specs(objs) -> list[InputSpec]:
    if not isinstance(objs, list):
        raise _bad("Give at least one input spec (name, dims, dtype).")
    if len(objs) > MAX_INPUTS:
        raise _bad(f"{len(objs)} input specs is more than the {MAX_INPUTS} supported.")
    specs = [parse_spec(o, i) for i, o in enumerate(objs)]
    names: dict[str, int] = {}
    for i, s in enumerate(specs):
        if s.name in names:
            raise _bad(f"Inputs {names[s.name] + 1} and {i + 1} are both named {s.name!r}; give each input its own name.")
        names[s.name] = i
    seen: dict[str, SymDim] = {}
    for s in specs:
        for d in s.dims:
            if isinstance(d, SymDim):
                prev = seen.setdefault(d.name, d)
                if (prev.min, prev.max) != (d.min, d.max):
                    raise _bad(f"Symbol {d.name} is given two ranges ({prev.min}..{prev.max} and {d.min}..{d.max}); give it one.")
    check_fits(specs)
    return specs


def random_inputs(specs: list[InputSpec], shapes: list[tuple[int, ...]] | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Random tensors that follow the specs; integer inputs draw from their value range."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, s in enumerate(specs):
        shape = shapes[i] if shapes else s.sample_shape()
        dt = s.torch_dtype
        if dt == torch.bool:
            t = torch.randint(0, 2, shape, generator=g).bool()
        elif not dt.is_floating_point:
            lo, hi = s.range if s.range else (0, 100)
            t = torch.randint(int(lo), int(hi), shape, generator=g, dtype=dt)
        else:
            lo, hi = s.range if s.range else (-1.0, 1.0)
            t = (torch.rand(shape, generator=g) * (hi - lo) + lo).to(dt)
        out.append(t)
    return out
