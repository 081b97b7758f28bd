"""Fallback: when the whole model does not import, compile the parts that do and keep the rest in
TorchScript. It swaps the pipeline's build stage: graph level first (runs of importable ops, loop
and branch bodies included: segments.py), module level (whole submodule calls: modules.py) when
asked for or when the graph cannot be partitioned. Verify, measure and export are the pipeline's."""

from __future__ import annotations

import os

import torch

from torchtvm.backend import latency
from torchtvm.common.errors import Cancelled, EngineError
from torchtvm.common.progress import Timer
from torchtvm.common.specs import random_inputs
from torchtvm.deploy.export import save_scripted
from torchtvm.frontend.loader import load_torchscript
from torchtvm.pipeline import stages
from torchtvm.pipeline.fallback.modules import partition
from torchtvm.pipeline.fallback.segments import partition_graph
from torchtvm.pipeline.fallback.torchscript import Partitioned, first_sentence
from torchtvm.pipeline.stages import Run
from torchtvm.verify.checks import verification_shapes
from torchtvm.verify.reference import run_reference


def fallback_hint() -> str:
    return " Strict compilation was asked for (CLI --strict); without it those parts stay in TorchScript and the rest compiles."


class PartitionedModel:
    """The model's TorchScript with its compiled parts calling TVM: the fallback build's product."""

    label, subject, short, artifact = "the partly compiled model", "The partly compiled model", "partly compiled", "the partly compiled model"
    partial = True

    def __init__(self, part: Partitioned, specs, num_outputs: int):
        self.part, self.specs, self.num_outputs = part, specs, num_outputs

    @property
    def module(self) -> torch.jit.ScriptModule:
        return self.part.module

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return run_reference(self.part.module, inputs, self.specs)

    def time_runs(self, inputs: list[torch.Tensor], repeat: int) -> list[float]:
        return latency.torch_runs(self.part.module, inputs, repeat)

    def costliest(self, inputs: list[torch.Tensor], n: int = 3) -> list[dict]:
        return []  # TorchScript runs the parts between the compiled ones: no per-kernel profile

    def export(self, path: str, run: Run) -> str:
        return save_scripted(self.part.module, path)


def compile_fallback(run: Run, import_error: EngineError, import_s: float) -> None:
    """The build stage for a model that does not import whole; then the shared verify, measure and
    export stages, with the partitioned model in place of TVM's."""
    options, ctx, specs = run.options, run.ctx, run.specs
    # torch's TorchScript converter inlines the graph it was given in place: start again from the file.
    module = run.module = load_torchscript(options.model)
    ctx.log(f"The whole model could not be imported ({import_error.message}); compiling the parts that import, the rest stays in TorchScript.", "warning")
    info = run.target()
    sets = verification_shapes(specs) or [[s.sample_shape() for s in specs]]
    t = Timer()
    part = None
    if options.fallback_level == "graph":
        excluded = (import_error.detail or "").splitlines() if import_error.code == "unsupported_op" else []
        ctx.progress("build", f"fallback: compiling the graph's importable segments for {info.kind}")
        try:
            part = partition_graph(module, specs, sets, info, options.model, excluded, progress=lambda m, f=None: ctx.progress("build", m, f), check_cancelled=ctx.check_cancelled)
        except Cancelled:
            raise
        except Exception as e:
            ctx.log(f"Graph-level fallback did not work ({first_sentence(e)}); trying module-level fallback.", "warning")
    if part is None:
        ctx.progress("build", f"module-level fallback: compiling submodules for {info.kind}")
        part = partition(module, specs, sets, info, options.model, progress=lambda m, f=None: ctx.progress("build", m, f), check_cancelled=ctx.check_cancelled)
        part.coverage["level"] = "module"
    build_s = t.seconds

    # The compiled parts must never run on a CPU that lacks their features (SIGILL).
    stages.check_runnable(run)
    num_outputs = len(run_reference(module, random_inputs(specs), specs)) if run.not_runnable else 0
    built = run.built = PartitionedModel(part, specs, num_outputs)
    run.result.update({
        "model": options.model,
        "inputs": [s.to_json() for s in specs],
        "target": info.to_json(),
        "num_outputs": num_outputs,
        "timings_s": {"import": import_s, "build": build_s},
        "verification": None,
        "threads": run.threads,
        "files": {},
        "fallback": {"reason": import_error.message, "code": import_error.code},
        "coverage": part.coverage,
    })
    stages.verify(run, seed=100, shapes=sets)
    if not run.not_runnable:
        built.num_outputs = run.result["num_outputs"] = len(run.result["verification"]["outputs"])
    os.makedirs(options.out_dir, exist_ok=True)
    run.result["files"]["partitioned"] = save_scripted(part.module, os.path.join(options.out_dir, "model_partitioned.pt"))
    stages.measure(run, random_inputs(specs, sets[0]))
    stages.finish(run)
    stages.package(run)
    stages.export(run)
