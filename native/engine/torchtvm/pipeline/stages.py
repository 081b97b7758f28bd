"""The stages every compile, tune and fallback goes through, in order:

    load -> import -> (tune) -> place/build -> verify -> measure -> export

Each stage reads the options (common/options.py) and the `Run` state, and adds to the state what
the next stages need. A tune adds the tune stage (tune/tuner.py). A fallback swaps the build stage
for pipeline/fallback (the graph cut into compiled segments and TorchScript). Both kinds of build
are a `Built`: something to run, time and export, so verify, measure and export are shared.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from torchtvm.backend import build as builder
from torchtvm.backend import latency
from torchtvm.backend.build import TargetInfo
from torchtvm.common import cpu_features
from torchtvm.common.errors import EngineError
from torchtvm.common.options import CompileOptions
from torchtvm.common.progress import JobContext
from torchtvm.common.specs import InputSpec, SymDim
from torchtvm.deploy import builds
from torchtvm.frontend.import_cache import ImportCache
from torchtvm.frontend.importer import Imported, import_torchscript, program_specs
from torchtvm.frontend.loader import is_exported, load_model, runnable
from torchtvm.tune import runs as _tune_runs
from torchtvm.verify.checks import (
    verification_shapes,
    verify_edge_values,
    verify_runner,
)
from torchtvm.verify.compare import json_safe


def set_threads(n: int | None) -> int:
    """Size torch's pool (which oneDNN and, through the runtime, TVM's loops share) for this job."""
    n = int(n or os.environ.get("TORCHTVM_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(n)
    # TVM reads this when its thread pool starts (first parallel kernel), so set it before building.
    os.environ["TVM_NUM_THREADS"] = str(n)
    return n


class Built(Protocol):
    """What a build stage makes: the compiled model as something to run, time and export."""

    # How messages name it: "comparing {label} with PyTorch", "{subject} failed on inputs …",
    # "measuring latency ({short})", "writing {artifact} to …".
    label: str
    subject: str
    short: str
    artifact: str
    num_outputs: int
    # A partly compiled model (TorchScript around compiled parts) rather than one compiled module.
    partial: bool

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]: ...

    def time_runs(self, inputs: list[torch.Tensor], repeat: int) -> list[float]: ...

    def costliest(self, inputs: list[torch.Tensor], n: int = 3) -> list[dict]: ...

    def export(self, path: str, run: Run) -> str: ...


@dataclass
class Run:
    """The state one job's stages share (the options say what was asked; this, what was made)."""

    options: CompileOptions
    ctx: JobContext
    threads: int
    module: Any = None  # the loaded model: a ScriptModule or an ExportedProgram
    specs: list[InputSpec] = field(default_factory=list)
    imported: Imported | None = None
    info: TargetInfo | None = None
    # Tuning records to build with (the tune stage's product), a MetaSchedule database.
    database: Any = None
    built: Built | None = None
    # Why this machine cannot run the build (a target for another CPU), or None.
    not_runnable: str | None = None
    # The RPC tracker key's servers a tune measures on (remote/fleet.Fleet), or None: this machine.
    # When this machine cannot run the build and they can, verification and latency run there.
    fleet: Any = None
    # Why the fleet's servers cannot run the build either (a sentence), when it cannot run here.
    fleet_not_runnable: str | None = None
    # A temporary folder holding the build's .pt uploaded to a server (verify and measure there).
    remote_dir: str | None = None
    timings_s: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)

    def target(self) -> TargetInfo:
        if self.info is None:
            self.info = builder.resolve_target(self.options.target, self.threads)
        return self.info


# ---- load and import ----------------------------------------------------------------------------


def load(run: Run) -> None:
    path = run.options.model
    run.ctx.progress("load", f"loading {path}")
    run.module = load_model(path)
    if run.options.inputs is not None:
        run.specs = list(run.options.inputs)
    elif is_exported(run.module):
        run.specs = program_specs(run.module)  # a .pt2's own dims and ranges
    else:
        raise EngineError("bad_spec", "Describe the model's inputs (name, shape, dtype): a TorchScript model does not state them.")
    run.ctx.check_cancelled()


def import_model(run: Run, specs: list[InputSpec], cache: ImportCache | None = None) -> tuple[Imported, bool]:
    """TorchScript or a .pt2 -> Relax, at `specs`. With a `cache` (in a tuning work dir) the import
    is kept there and reused while the model file, the specs and the engine are unchanged.
    Returns (imported, whether it came from the cache)."""
    imported = cache.load_imported() if cache is not None else None
    if imported is not None:
        return imported, True
    run.ctx.progress("import", "importing TorchScript into TVM Relax")
    imported = import_torchscript(run.module, specs, progress=lambda m: run.ctx.progress("import", m))
    if cache is not None:
        cache.save_imported(imported, run.ctx.log)
    return imported, False


# ---- verify, measure, export --------------------------------------------------------------------


def check_runnable(run: Run) -> None:
    """Never run code this machine cannot execute (a target with CPU features the host lacks would
    kill the engine with SIGILL): verification and latency are skipped with the reason instead."""
    info = run.target()
    run.not_runnable = cpu_features.why_not_runnable(info.target, info.features) if info.kind == "llvm" else None
    run.fleet_not_runnable = None
    if run.not_runnable and run.fleet is not None:
        why = run.fleet.why_not_runnable(info.target, info.features)
        if why:
            run.fleet_not_runnable = f"No server of key {run.fleet.key!r} at {run.fleet.tracker} can run it either: {why}"


def runs_remotely(run: Run) -> bool:
    """This machine cannot run the build and the servers of the tracker key can: verification and
    latency run on one of them (remote/verify.py)."""
    return bool(run.not_runnable) and run.fleet is not None and not run.fleet_not_runnable


def _remote_package(run: Run) -> str:
    """The build's deployable .pt in a temporary folder, to upload to a server (the package proper is
    written after verification, with its result); written once for verify and measure."""
    assert run.built is not None
    if run.remote_dir is None:
        run.remote_dir = tempfile.mkdtemp(prefix="torchtvm-remote-")
    path = os.path.join(run.remote_dir, "model.pt")
    return path if os.path.isfile(path) else run.built.export(path, run)


def _remote_done(run: Run) -> None:
    if run.remote_dir is not None:
        shutil.rmtree(run.remote_dir, ignore_errors=True)
        run.remote_dir = None


def _server_words(server: dict) -> str:
    return f"{server.get('name')} ({server.get('cpu_model') or 'unknown CPU'}, key {server.get('key')!r})"


def verify(run: Run, seed: int = 0, shapes: list | None = None) -> None:
    """Random inputs at every size set (default: the sample and each symbol's range), then edge values."""
    built = run.built
    assert built is not None
    verification: dict[str, Any]
    if runs_remotely(run):
        verification = _verify_remote(run, seed, shapes)
    elif run.not_runnable:
        reason = run.not_runnable + " " + (run.fleet_not_runnable or "Verify it on a machine with that CPU (compile with --tracker HOST:PORT --key KEY to verify it on a server that has it).")
        verification = {"ok": False, "skipped": True, "outputs": [], "reason": reason}
        run.ctx.log(reason, "warning")
    else:
        run.ctx.progress("verify", f"comparing {built.label} with PyTorch on random inputs")
        verification = verify_runner(run.module, built, run.specs, shapes or verification_shapes(run.specs), seed=seed, subject=built.subject)
        if run.options.edge_values:
            run.ctx.progress("verify", f"comparing {built.label} with PyTorch on edge values (NaN, inf, -0.0, huge, tiny, zeros)")
            verification["edge_values"] = verify_edge_values(run.module, built, run.specs)
    run.result["verification"] = verification
    run.ctx.check_cancelled()


def _verify_remote(run: Run, seed: int, shapes: list | None) -> dict:
    """The verification of a build this machine cannot run, on a server of the tracker key that can:
    the inputs and PyTorch's outputs are made here, the build runs there, and the comparison (the
    same code and tolerances as here) is made here."""
    from torchtvm.remote.verify import RemoteBuild

    built = run.built
    assert built is not None and run.fleet is not None
    run.ctx.progress("verify", f"uploading {built.artifact} to a server of key {run.fleet.key!r} at {run.fleet.tracker} (this machine cannot run it)")
    package = _remote_package(run)
    with RemoteBuild(run.fleet, package) as rb:
        where = _server_words(rb.server)
        run.ctx.progress("verify", f"comparing {built.label} with PyTorch on random inputs, run on {where}")
        verification = verify_runner(run.module, rb, run.specs, shapes or verification_shapes(run.specs), seed=seed, subject=f"{built.subject} (on {rb.server.get('name')})")
        if run.options.edge_values:
            run.ctx.progress("verify", f"comparing {built.label} with PyTorch on edge values, run on {where}")
            verification["edge_values"] = verify_edge_values(run.module, rb, run.specs)
        verification["verified_on"] = rb.server
    run.ctx.log(f"{run.not_runnable} It was verified on {where}: " + ("its outputs match PyTorch's." if verification["ok"] else "its outputs differ from PyTorch's."),
                "info" if verification["ok"] else "warning")
    return verification


# A build slower than its baseline by more than this (p50) is reported as slower: below it, two
# runs of the same code differ by as much.
SLOWER_MARGIN = 1.03


def measure(run: Run, sample: list[torch.Tensor]) -> None:
    """The build's latency against PyTorch's, on the same inputs, in this process and thread count,
    in interleaved rounds: TorchScript as loaded, TorchScript frozen, and the build. The baseline is
    the faster of the two TorchScripts (frozen, usually). A build slower than the baseline says so, by how much,
    and which kernels cost it."""
    built = run.built
    assert built is not None
    if run.options.measure and runs_remotely(run):
        _measure_remote(run, sample)
    if not run.options.measure or run.not_runnable:
        _remote_done(run)
        return
    run.ctx.progress("measure", "measuring latency: PyTorch, PyTorch frozen and the build, in interleaved rounds", 0.0)
    model = runnable(run.module)
    frozen, why_not = latency.frozen_torchscript(run.module)
    timers = {"torch": lambda n: latency.torch_runs(model, sample, n)}
    if frozen is not None:
        timers["torch_frozen"] = lambda n: latency.torch_runs(frozen, sample, n)
    timers["tvm"] = lambda n: built.time_runs(sample, n)
    stats = latency.compare(timers)
    run.ctx.check_cancelled()
    # The baseline is the faster of the model as loaded and frozen: freezing (optimize_for_inference)
    # is usually faster, but on small inputs its MKLDNN conversions can cost more than they save,
    # and a build is measured against the best the user already has.
    frozen_faster = frozen is not None and stats["torch_frozen"]["p50"] <= stats["torch"]["p50"]
    base_key = "torch_frozen" if frozen_faster else "torch"
    baseline = "TorchScript frozen" if frozen_faster else ("PyTorch eager" if is_exported(run.module) else "TorchScript")
    torch_lat, tvm_lat, base_lat = stats["torch"], stats["tvm"], stats[base_key]
    ratio = tvm_lat["p50"] / base_lat["p50"] if base_lat["p50"] > 0 else None
    result: dict[str, Any] = {
        "torch": torch_lat,
        "tvm": tvm_lat,
        "ratio": tvm_lat["p50"] / torch_lat["p50"] if torch_lat["p50"] > 0 else None,
        "baseline": baseline,
        "baseline_ratio": ratio,
        # The sizes of the symbolic dims these latencies were measured at (a symbolic batch is
        # timed at one size: the numbers say which).
        "sizes": _symbol_sizes(run.specs, sample),
    }
    if frozen is not None:
        result["torch_frozen"] = stats["torch_frozen"]
        if not frozen_faster:
            result["baseline_note"] = f"TorchScript as loaded: faster here than frozen ({torch_lat['p50']:.3f} ms against {stats['torch_frozen']['p50']:.3f} ms, p50)"
    elif why_not and not is_exported(run.module):
        result["baseline_note"] = f"TorchScript as loaded ({why_not})"
    run.result["latency_ms"] = result
    if run.options.trials and run.options.work_dir:
        # A tune's build: its measured latency goes into the run's record in the work dir too.
        _tune_runs.note_measured(run.options.work_dir, run.ctx.job_id, tvm_lat["p50"])
    if ratio is not None and ratio > SLOWER_MARGIN:
        costly = built.costliest(sample)
        where = "; ".join(f"{k['kernel']} {k['ms']:.3f} ms ({100 * k['share']:.0f}%)" for k in costly)
        sentence = (
            f"This build is {ratio:.2f}× slower than the model you brought, run as {baseline} "
            f"({tvm_lat['p50']:.3f} ms against {base_lat['p50']:.3f} ms, p50, same process and threads)"
            + (f". Most of its time: {where}" if where else "")
            + ". Try tuning (--trials), or keep the model in PyTorch."
        )
        run.result["slower"] = {"ratio": ratio, "baseline": baseline, "tvm_ms": tvm_lat["p50"], "baseline_ms": base_lat["p50"], "costliest": costly, "message": sentence}
        run.ctx.log(sentence, "warn")


def _measure_remote(run: Run, sample: list[torch.Tensor]) -> None:
    """The build's latency on a server of the key (the CPU it was verified on; remote.server.bench_file:
    warm-up, then timed calls on random inputs at the sample sizes). The model as brought (TorchScript) is
    timed there too, in the same session, as the baseline. A .pt2 cannot be loaded there: its
    latency is logged, not reported (a latency report compares the build with the model)."""
    from torchtvm.remote.verify import RemoteBuild

    built = run.built
    assert built is not None and run.fleet is not None
    inputs = [s.to_json() for s in run.specs]
    with RemoteBuild(run.fleet, _remote_package(run)) as rb:
        where = _server_words(rb.server)
        run.ctx.progress("measure", f"measuring latency on {where}: the build, then the model as brought", 0.0)
        tvm_lat = rb.bench(rb.model, inputs, threads=run.threads)
        torch_lat = None
        if not is_exported(run.module):
            torch_lat = rb.bench(rb.upload(run.options.model, "original.pt"), inputs, threads=run.threads)
        server = rb.server
    run.ctx.check_cancelled()
    if torch_lat is None:
        run.ctx.log(f"Latency measured on {where}: {tvm_lat['p50']:.3f} ms p50. The model as brought (a torch.export program) cannot be timed there, "
                    "so the result carries no latency comparison.", "warn")
        return
    ratio = tvm_lat["p50"] / torch_lat["p50"] if torch_lat["p50"] > 0 else None
    run.result["latency_ms"] = {
        "torch": torch_lat,
        "tvm": tvm_lat,
        "ratio": ratio,
        "baseline": "TorchScript",
        "baseline_ratio": ratio,
        "baseline_note": f"TorchScript as loaded, timed on {server.get('name')} in the same session after the build (not interleaved, not frozen)",
        "sizes": _symbol_sizes(run.specs, sample),
        # Where both were timed: a server of the tracker key, not this machine.
        "measured_on": server,
    }
    run.ctx.log(f"Latency measured on {where}: {tvm_lat['p50']:.3f} ms p50, TorchScript there {torch_lat['p50']:.3f} ms.")
    if ratio is not None and ratio > SLOWER_MARGIN:
        run.ctx.log(f"On {where} this build is {ratio:.2f}× slower than the model you brought ({tvm_lat['p50']:.3f} ms against {torch_lat['p50']:.3f} ms, p50).", "warn")
    if run.options.trials and run.options.work_dir:
        _tune_runs.note_measured(run.options.work_dir, run.ctx.job_id, tvm_lat["p50"])


def _symbol_sizes(specs: list[InputSpec], sample: list[torch.Tensor]) -> dict[str, int]:
    """{symbol: size} of the symbolic dims in `sample` (what a latency was measured at)."""
    sizes: dict[str, int] = {}
    for spec, t in zip(specs, sample):
        for d, n in zip(spec.dims, getattr(t, "shape", ())):
            if isinstance(d, SymDim):
                sizes.setdefault(d.name, int(n))
    return sizes


def finish(run: Run) -> None:
    """Everything reported must serialise (no NaN/inf numbers in JSON) before any file is written,
    so no failure can come after the export."""
    _remote_done(run)
    run.result["verification"] = json_safe(run.result["verification"])
    if "latency_ms" in run.result:
        run.result["latency_ms"] = json_safe(run.result["latency_ms"])


def package(run: Run) -> None:
    """The build as an artifact (deploy/builds.py): its deployable .pt packaged once in the build
    folder, after verification and measurement, and build.json naming it by its SHA-256 with the
    result. An export copies that file: what was verified and measured is what is deployed."""
    built = run.built
    if built is None or not run.options.package:
        return
    out_dir = run.options.out_dir
    run.ctx.progress("package", f"packaging {built.artifact} in {out_dir}")
    os.makedirs(out_dir, exist_ok=True)
    pkg = built.export(os.path.join(out_dir, builds.PACKAGE), run)
    files = run.result["files"]
    files["package"] = pkg
    run.result["build"] = builds.build_info(out_dir, pkg, files.get("library"), tuned=run.database is not None, partial=built.partial)
    files["record"] = builds.write_record(out_dir, run.result["build"], run.result)


def export(run: Run) -> None:
    path = run.options.export_path
    built = run.built
    if not path or built is None:
        return
    o = run.options
    refusal = builds.export_refusal(run.result["verification"], built.label, o.export_unverified, o.accept_edge_mismatch)
    if refusal:
        run.result["export_skipped"] = refusal
        run.ctx.log(refusal, "warning")
        return
    run.ctx.progress("export", f"writing {built.artifact} to {path}")
    build = run.result.get("build")
    run.result["files"]["exported"] = builds.copy_package(build, path) if build else built.export(path, run)
