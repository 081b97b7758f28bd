"""The engine's RPC methods: name -> function(params, ctx) -> JSON-able result.

The stages (TVM's compiler, MetaSchedule) are imported by the first job that needs them, not when
the server starts: it answers `versions`, `cancel` and `shutdown` at once, and a failure while
importing TVM becomes that job's error instead of a server that never starts.
"""

from __future__ import annotations

import platform
from typing import Callable

from torchtvm.common.progress import JobContext

Method = Callable[[dict, JobContext], dict]


def _inspect(params: dict, ctx: JobContext) -> dict:
    from torchtvm.frontend.inspection import inspect_file  # noqa: PLC0415 - see the module docstring

    ctx.progress("inspect", f"inspecting {params.get('model')}")
    # inputs: specs to give the graph's ops their output shapes (the view asks again when they change).
    return inspect_file(params.get("model"), params.get("inputs"))


def _compile(params: dict, ctx: JobContext) -> dict:
    from torchtvm.pipeline.compile import compile_model  # noqa: PLC0415 - see the module docstring

    return compile_model(params, ctx)


def _tune(params: dict, ctx: JobContext) -> dict:
    from torchtvm.pipeline.compile import tune_model  # noqa: PLC0415 - see the module docstring

    return tune_model(params, ctx)


def _versions(params: dict, ctx: JobContext) -> dict:
    import torch  # noqa: PLC0415 - see the module docstring
    import tvm  # noqa: PLC0415

    return {"torch": torch.__version__, "tvm": tvm.__version__, "python": platform.python_version()}


METHODS: dict[str, Method] = {
    "inspect": _inspect,
    "compile": _compile,
    "tune": _tune,
    "versions": _versions,
}


def register(name: str, fn: Method) -> None:
    METHODS[name] = fn
