"""CompileOptions: everything a compile or a tune needs, parsed once where a request enters the
engine (the RPC methods, the seed API, `tune_and_build`) and carried through every stage.

Its defaults live here and nowhere else. It holds only what a caller can ask for: the objects the
stages make on the way (the loaded model, the imported module, the tuning database) travel in the
pipeline's own state (pipeline/stages.py), never in the options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from torchtvm.common.errors import EngineError
from torchtvm.common.specs import InputSpec, parse_specs

PLACEMENTS = ("auto", "library", "tvm")
FALLBACK_LEVELS = ("graph", "module")


@dataclass(frozen=True)
class CompileOptions:
    model: str
    # One spec per model input; None for a torch.export `.pt2` given without specs (its own dynamic
    # dims and ranges are used, read when it is loaded).
    inputs: tuple[InputSpec, ...] | None
    # Where the build (model.so, the partitioned model) goes.
    out_dir: str
    target: str = "llvm"
    # None: TORCHTVM_NUM_THREADS, else every core (pipeline.stages.set_threads).
    threads: int | None = None
    placement: str = "auto"
    measure: bool = True
    edge_values: bool = True
    # Compare each op of the build with PyTorch's value for the same node (verify/per_op.py): on
    # request only, never in the default build.
    compare_ops: bool = False
    # When the whole model does not import: compile what does and leave the rest in TorchScript.
    fallback: bool = True
    fallback_level: str = "graph"
    export_path: str | None = None
    # Package the build in out_dir (model.pt and build.json, deploy/builds.py): what exports copy.
    # The seed API, which returns the module in memory, turns it off.
    package: bool = True
    export_unverified: bool = False
    # Export although the edge-value pass (NaN, inf, -0.0, huge, tiny inputs) found a difference.
    accept_edge_mismatch: bool = False
    # Folders this job may write in, checked again at each write (common/write_roots.py): set by
    # `torchtvm serve`; None elsewhere.
    write_roots: list[str] | None = None
    # Tuning: trials > 0 makes a tune; the rest only matters then.
    trials: int = 0
    trials_per_task: int | None = None
    trials_per_iter: int | None = None
    seed: int | None = None
    work_dir: str | None = None
    tune_sizes: dict[str, int] = field(default_factory=dict)
    # Measure on an RPC tracker's servers of `rpc_key` (HOST:PORT; remote/fleet.py): the target is
    # their CPU, builds stay here. None: this machine.
    tracker: str | None = None
    rpc_key: str | None = None

    @property
    def is_pt2(self) -> bool:
        return self.model.endswith(".pt2")

    @classmethod
    def from_params(cls, params: dict, *, tune: bool = False) -> CompileOptions:
        """The options of an RPC `compile` or `tune` request (parameter types are already checked
        by service.params). `compile` ignores the tuning parameters."""
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise EngineError("file_not_found", "No model file was given; pass the path of a TorchScript .pt or a torch.export .pt2 file.")
        # A .pt2's own dynamic dims and ranges are the default specs; TorchScript needs them given.
        raw_inputs = params.get("inputs")
        inputs = tuple(parse_specs(raw_inputs)) if raw_inputs or not model.endswith(".pt2") else None
        beside = os.path.dirname(os.path.abspath(model))
        placement = params.get("placement") or "auto"
        if placement not in PLACEMENTS:
            raise EngineError("bad_params", f"placement must be one of {', '.join(PLACEMENTS)}, not {placement[:40]!r}.")
        level = params.get("fallback_level") or "graph"
        if level not in FALLBACK_LEVELS:
            raise EngineError("bad_params", f"fallback_level must be one of {', '.join(FALLBACK_LEVELS)}, not {str(level)[:40]!r}.")
        opts = cls(
            model=model,
            inputs=inputs,
            out_dir=params.get("out_dir") or os.path.join(beside, "torchtvm-build"),
            target=params.get("target") or "llvm",
            threads=params.get("threads"),
            placement=placement,
            measure=params.get("measure", True) is not False,
            edge_values=params.get("edge_values", True) is not False,
            compare_ops=params.get("compare_ops") is True,
            # `strict: true` and `fallback: false` both ask for all or nothing.
            fallback=not params.get("strict") and params.get("fallback") is not False,
            fallback_level=level,
            export_path=params.get("export_path") or None,
            export_unverified=bool(params.get("export_unverified")),
            accept_edge_mismatch=bool(params.get("accept_edge_mismatch")),
            write_roots=[str(r) for r in params["write_roots"]] if params.get("write_roots") else None,
            tracker=params.get("tracker") or None,
            rpc_key=params.get("key") or None,
        )
        if not tune:
            return opts
        trials = int(params.get("trials") or 0)
        if trials < 1:
            raise EngineError("bad_trials", "Tuning needs a trial budget of at least 1 (--trials N).")
        per_task, per_iter = params.get("trials_per_task"), params.get("trials_per_iter")
        return opts.replace(
            trials=trials,
            trials_per_task=int(per_task) if per_task else None,
            trials_per_iter=int(per_iter) if per_iter else None,
            seed=params.get("seed"),
            work_dir=os.path.abspath(params.get("work_dir") or os.path.join(beside, "tuning")),
            tune_sizes=dict(params.get("tune_sizes") or {}),
        )

    def replace(self, **changes) -> CompileOptions:
        return replace(self, **changes)
