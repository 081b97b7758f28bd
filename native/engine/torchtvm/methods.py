"""The engine's RPC methods: name -> function(params, ctx) -> JSON-able result.

Keys of a result that start with "_" are in-process values (executables, targets) for callers in
Python; the RPC server drops them before replying.
"""

from __future__ import annotations

from typing import Callable

from .jobs import JobContext

Method = Callable[[dict, JobContext], dict]


def _inspect(params: dict, ctx: JobContext) -> dict:
    from .inspector import inspect_file

    ctx.progress("inspect", f"inspecting {params.get('model')}")
    return inspect_file(params.get("model"))


def _compile(params: dict, ctx: JobContext) -> dict:
    from .pipeline import compile_model

    return compile_model(params, ctx)


def _tune(params: dict, ctx: JobContext) -> dict:
    from .tune import tune_model

    return tune_model(params, ctx)


def _versions(params: dict, ctx: JobContext) -> dict:
    import platform

    import torch
    import tvm

    return {"torch": torch.__version__, "tvm": tvm.__version__, "python": platform.python_version()}


METHODS: dict[str, Method] = {
    "inspect": _inspect,
    "compile": _compile,
    "tune": _tune,
    "versions": _versions,
}


def register(name: str, fn: Method) -> None:
    METHODS[name] = fn
