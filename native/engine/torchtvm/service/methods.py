"""The engine's RPC methods: name -> function(params, ctx) -> JSON-able result.

The stages (TVM's compiler, MetaSchedule) are imported by the first job that needs them, not when
the server starts: it answers `versions`, `cancel` and `shutdown` at once, and a failure while
importing TVM becomes that job's error instead of a server that never starts. `versions`,
`tuning_log` and `export_build` (QUICK_METHODS: files only, no TVM) are answered while a job runs.
"""

from __future__ import annotations

import platform
from typing import Callable

from torchtvm.common.errors import EngineError
from torchtvm.common.progress import JobContext
from torchtvm.tune.log import read_tuning_log  # reads files only: no TVM

Method = Callable[[dict, JobContext], dict]


def _inspect(params: dict, ctx: JobContext) -> dict:
    from torchtvm.frontend.inspection import inspect_file  # noqa: PLC0415 - see the module docstring

    ctx.progress("inspect", f"inspecting {params.get('model')}")
    # inputs: specs to give the graph's ops their output shapes (the view asks again when they change).
    # No model: "" reaches the loader's "No model file was given" exactly as None did.
    return inspect_file(params.get("model") or "", params.get("inputs"))


def _compile(params: dict, ctx: JobContext) -> dict:
    from torchtvm.pipeline.compile import compile_model  # noqa: PLC0415 - see the module docstring

    return compile_model(params, ctx)


def _tune(params: dict, ctx: JobContext) -> dict:
    from torchtvm.pipeline.compile import tune_model  # noqa: PLC0415 - see the module docstring

    return tune_model(params, ctx)


def _export_build(params: dict, ctx: JobContext) -> dict:
    """Copy a build's packaged .pt to export_path (deploy/builds.py): no import, no build."""
    from torchtvm.common import write_roots  # noqa: PLC0415 - see the module docstring
    from torchtvm.deploy.builds import export_build  # noqa: PLC0415

    build, path = params.get("build"), params.get("export_path")
    if not isinstance(build, str) or not build or not isinstance(path, str) or not path:
        raise EngineError("bad_params", "export_build needs build (a build folder) and export_path (the .pt to write).")
    ctx.progress("export", f"copying the build in {build} to {path}")
    with write_roots.allowed(params.get("write_roots")):
        return export_build(build, path, bool(params.get("export_unverified")), bool(params.get("accept_edge_mismatch")))


def _versions(params: dict, ctx: JobContext) -> dict:
    import torch  # noqa: PLC0415 - see the module docstring
    import tvm  # noqa: PLC0415

    return {"torch": torch.__version__, "tvm": tvm.__version__, "python": platform.python_version()}


def _tuning_log(params: dict, ctx: JobContext) -> dict:
    work_dir = params.get("dir")
    if not isinstance(work_dir, str) or not work_dir:
        raise EngineError("bad_params", "tuning_log needs dir: the MetaSchedule work dir to read.")
    return read_tuning_log(work_dir)


def _tracker_queues(params: dict, ctx: JobContext) -> dict:
    """An RPC tracker's queues; with `key`, that key's servers asked for their CPU (remote/fleet.py)."""
    import json  # noqa: PLC0415

    from torchtvm.remote import fleet  # noqa: PLC0415 - see the module docstring

    tracker = params.get("tracker")
    if not isinstance(tracker, str) or not tracker:
        raise EngineError("bad_params", "tracker_queues needs tracker: HOST:PORT.")
    out = fleet.queues(tracker)
    key = params.get("key")
    if isinstance(key, str) and key:
        f = fleet.probe(tracker, key, timeout=15.0)
        out["probe"] = {**f.to_json(), "target": json.loads(f.target_json())}
    return out


def _bench_remote(params: dict, ctx: JobContext) -> dict:
    """A bench job on a server of an RPC tracker's key (issue 25): remote.bench.bench_remote uploads the
    model and times it there. Adds what a bench result shows: the shapes measured and where the input
    specs came from (the request's, else the export's metadata, read by the server)."""
    from torchtvm.common.specs import parse_specs  # noqa: PLC0415 - see the module docstring
    from torchtvm.remote.bench import bench_remote  # noqa: PLC0415

    tracker, key, model = params.get("tracker"), params.get("key"), params.get("model")
    if not isinstance(tracker, str) or not tracker or not isinstance(key, str) or not key or not isinstance(model, str) or not model:
        raise EngineError("bad_params", "bench_remote needs tracker (HOST:PORT), key and model (the file to upload and time).")
    counts = {k: params.get(k, d) for k, d in (("warmup", 10), ("iterations", 100), ("timeout", 600))}
    for k, v in counts.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "warmup" else 1):
            raise EngineError("bad_params", f"Parameter {k} of bench_remote must be a whole number{' of at least 0' if k == 'warmup' else ' above 0'}, not {v!r:.60}.")
    inputs = params.get("inputs") or None
    ctx.progress("bench", f"uploading {model} to a server of key {key} at {tracker}")
    out = bench_remote(tracker, key, model, inputs, counts["warmup"], counts["iterations"], params.get("threads"), timeout=counts["timeout"])
    out["specs"] = out.get("inputs") or []
    try:
        out["inputs"] = [{"name": s.name, "shape": list(s.sample_shape()), "dtype": s.dtype} for s in parse_specs(out["specs"])]
    except EngineError:  # specs the server could use but this engine cannot read: the figures stand without them
        out["inputs"] = []
    out["inputs_from"] = "request" if inputs else "metadata"
    return out


METHODS: dict[str, Method] = {
    "inspect": _inspect,
    "compile": _compile,
    "tune": _tune,
    "versions": _versions,
    "tuning_log": _tuning_log,
    "export_build": _export_build,
    "tracker_queues": _tracker_queues,
    "bench_remote": _bench_remote,
}

# Methods that touch no compiler state and answer in well under a second (tracker_queues waits on
# the network, never on the compiler): the server runs each on its own thread instead of queueing it
# behind the running job (rpc_server.Server).
QUICK_METHODS = frozenset({"versions", "tuning_log", "export_build", "tracker_queues"})


def register(name: str, fn: Method) -> None:
    METHODS[name] = fn
