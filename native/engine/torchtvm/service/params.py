"""The parameters the engine's RPC methods read, with their types and ranges: a request with another
type gets a sentence naming the parameter, not a TypeError deep inside a job. The app's contract
(app/contract/jobs.ts) must agree; test/node/contract-engine-params.test.ts fails on drift."""

from __future__ import annotations

from torchtvm.common.errors import EngineError

# Types of the parameters the methods read; a request with another type gets a sentence, not a
# TypeError deep inside a job. Keys not listed are passed through (methods ignore unknown keys).
_INT = (int,)
PARAM_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a file path"),
    "inputs": ((list,), "a list of input specs"),
    "out_dir": ((str,), "a folder path"),
    "export_path": ((str,), "a file path"),
    "work_dir": ((str,), "a folder path"),
    "tracker": ((str,), "an RPC tracker's HOST:PORT"),
    "key": ((str,), "an RPC tracker key"),
    "target": ((str,), "a target name or a TVM target JSON string"),
    "placement": ((str,), "one of auto, library, tvm"),
    "threads": (_INT, "a whole number of threads"),
    "trials": (_INT, "a whole number of trials"),
    "trials_per_task": (_INT, "a whole number of trials"),
    "trials_per_iter": (_INT, "a whole number of trials"),
    "seed": (_INT, "a whole number"),
    "measure": ((bool,), "true or false"),
    "fallback": ((bool,), "true or false"),
    "strict": ((bool,), "true or false"),
    "export_unverified": ((bool,), "true or false"),
    "accept_edge_mismatch": ((bool,), "true or false"),
    "write_roots": ((list,), "a list of folder paths"),
    "edge_values": ((bool,), "true or false"),
    "compare_ops": ((bool,), "true or false"),
    "tune_sizes": ((dict,), "an object of symbol sizes (name -> size)"),
    "dir": ((str,), "a folder path"),
    "build": ((str,), "a build folder path"),
}
_RANGES: dict[str, tuple[int, int]] = {"threads": (1, 4096), "trials": (0, 10_000_000), "trials_per_task": (0, 10_000_000), "trials_per_iter": (1, 100_000), "seed": (0, 2**63 - 1)}


def check_params(method: str, params: dict) -> None:
    """Refuse parameters of the wrong type or range with a sentence naming the parameter."""
    for key, value in params.items():
        if key.startswith("_"):
            raise EngineError("bad_params", f"Parameter {key[:60]!r} of {method} is internal; remove it from the request.")
        if key not in PARAM_TYPES or value is None:
            continue
        types, what = PARAM_TYPES[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise EngineError("bad_params", f"Parameter {key} of {method} must be {what}, not {type(value).__name__} {_short(value)}.")
        if key in _RANGES:
            lo, hi = _RANGES[key]
            assert isinstance(value, int)  # every ranged parameter is typed _INT, checked just above
            if not (lo <= value <= hi):
                raise EngineError("bad_params", f"Parameter {key} of {method} must be between {lo} and {hi}, not {_short(value)}.")
        if isinstance(value, str) and ("\0" in value or len(value) > 4096):
            raise EngineError("bad_params", f"Parameter {key} of {method} is not a usable string (it holds a NUL byte or is over 4096 characters).")


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
