"""A build is an artifact with an identity: what compile and tune make, and what export packages.

Every compile or tune leaves in its build folder (out_dir):

    model.so     the compiled library (absent for a partly compiled model: its parts are inside)
    model.pt     the deployable .pt, packaged once, right after verification and measurement
    build.json   the record: the build's identity (the SHA-256 of model.pt, that of the library),
                 and the result the job reported (placement, verification, latency, tuning)

Exporting a build copies model.pt byte for byte, after checking that it is still the file the record
names: nothing is imported, placed or built again, so the file a user deploys is the one that was
verified and measured. This module reads files and hashes bytes only (no torch, no TVM), so an
export answers at once, beside a running tune.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile

from torchtvm.common import write_roots
from torchtvm.common.atomic_write import write_text_atomic
from torchtvm.common.errors import EngineError
from torchtvm.common.file_hash import file_sha256

RECORD = "build.json"
PACKAGE = "model.pt"
RECORD_FORMAT = 1
# A record is a job's result: a placement report of a large model is some 100 KiB; far more is not one.
MAX_RECORD_BYTES = 64 * 1024 * 1024


def build_info(out_dir: str, package: str, library: str | None, tuned: bool, partial: bool) -> dict:
    """The build's identity as results carry it (`result.build`)."""
    digest = file_sha256(package)
    return {
        "id": digest[:12],
        "sha256": digest,
        "library_sha256": file_sha256(library) if library and os.path.isfile(library) else None,
        "dir": os.path.abspath(out_dir),
        "package": os.path.abspath(package),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tuned": tuned,
        "partial": partial,
    }


def write_record(out_dir: str, build: dict, result: dict) -> str:
    """build.json beside the package: the identity and the job's result (already JSON-safe)."""
    path = os.path.join(out_dir, RECORD)
    write_roots.check(path, "build folder")
    record = {"format": RECORD_FORMAT, "build": build, "result": {k: v for k, v in result.items() if k != "build"}}
    try:
        write_text_atomic(path, json.dumps(record, allow_nan=False))
    except OSError as e:
        raise EngineError("build_write_failed", f"Could not write the build record {path}: {e.strerror or e}. Free some disk space or choose another build folder.") from e
    return path


def read_record(build_dir: str) -> dict:
    """The record of the build in `build_dir` (or the path of its build.json), checked: a missing,
    damaged or changed build is refused with what to do."""
    build_dir = os.path.abspath(build_dir)
    if os.path.basename(build_dir) == RECORD:
        build_dir = os.path.dirname(build_dir)
    path = os.path.join(build_dir, RECORD)
    if not os.path.isdir(build_dir):
        raise EngineError("build_missing", f"There is no build folder {build_dir}: compile or tune the model to make a build, then export it.")
    if not os.path.isfile(path):
        raise EngineError("build_missing", f"{build_dir} holds no build record ({RECORD}): it was made by an older workbench or is not a build folder. Compile the model again to make a build.")
    if os.path.getsize(path) > MAX_RECORD_BYTES:
        raise EngineError("build_damaged", f"{path} is larger than any build record ({os.path.getsize(path)} bytes); compile the model again.")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        build, result = record["build"], record["result"]
        if not isinstance(build, dict) or not isinstance(result, dict) or not isinstance(build.get("sha256"), str):
            raise TypeError("not a build record")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EngineError("build_damaged", f"The build record {path} cannot be read ({type(e).__name__}: {str(e)[:120]}); compile the model again.") from e
    if int(record.get("format", 0)) > RECORD_FORMAT:
        raise EngineError("build_damaged", f"The build record {path} was written by a newer workbench (format {record.get('format')}); export it with that version.")
    build["dir"] = build_dir
    build["package"] = os.path.join(build_dir, PACKAGE)
    return record


def export_refusal(verification: dict | None, label: str, export_unverified: bool, accept_edge_mismatch: bool) -> str | None:
    """Why a build must not be exported silently (None: it may be): its outputs differ from
    PyTorch's, or it could not be verified here, or it differs on edge values; each can be accepted
    knowingly (export_unverified, accept_edge_mismatch)."""
    verification = verification or {}
    if not verification.get("ok", True) and not export_unverified:
        why = verification.get("reason") if verification.get("skipped") else f"{label}'s outputs differ from PyTorch's beyond tolerance"
        return f"Not exported: {why} (pass --export-unverified, or export_unverified=True from Python, to export anyway)."
    edge = verification.get("edge_values") or {}
    if not edge.get("ok", True) and not (accept_edge_mismatch or export_unverified):
        # Ordinary inputs agree, inputs with NaN, inf, -0.0, huge or tiny values do not: a silent
        # difference a user must accept knowingly.
        return (
            f"Not exported: on inputs with edge values ({', '.join(edge.get('failed') or [])}) {label}'s outputs differ from PyTorch's "
            "(verification.edge_values says where). Pass --accept-edge-mismatch, or accept_edge_mismatch=True from Python, to export anyway."
        )
    return None


def verification_summary(verification: dict, label: str) -> dict:
    """What the package's metadata records of its verification (the runtime warns on loading an
    export whose summary is not ok, naming the reason): ok only when the outputs matched PyTorch's,
    on random inputs and on edge values; where it ran, when on a server of an RPC tracker key."""
    edge = verification.get("edge_values") or {}
    ok = bool(verification.get("ok", True)) and bool(edge.get("ok", True))
    summary: dict = {"ok": ok, "skipped": bool(verification.get("skipped"))}
    if not verification.get("ok", True):
        summary["reason"] = (str(verification.get("reason") or "it could not be verified") if verification.get("skipped")
                             else f"{label}'s outputs differed from PyTorch's beyond tolerance")
    elif not edge.get("ok", True):
        summary["reason"] = f"on inputs with edge values ({', '.join(edge.get('failed') or [])}) {label}'s outputs differed from PyTorch's"
    where = verification.get("verified_on")
    if isinstance(where, dict) and where.get("name"):
        summary["verified_on"] = str(where["name"])
    return summary


def _write_bytes(f, data: bytes) -> None:
    # One place for the write, so tests can simulate a full disk.
    f.write(data)


def write_bytes_atomic(path: str, data: bytes) -> str:
    """`data` to `path` atomically: a temp file in the same folder, flushed, then os.replace. On
    failure (e.g. the disk is full) nothing is left behind and the old file, if any, is whole."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".torchtvm-", suffix=".pt.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            fd = -1
            _write_bytes(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        write_roots.check(path, "export path")  # resolved again, just before the file is put there
        os.replace(tmp, path)
    except BaseException as e:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise EngineError("export_failed", f"Could not write the exported model to {path}: {e.strerror or e}. Free some disk space or choose another folder; nothing was written.", str(e)) from e
        raise
    return path


def copy_package(build: dict, path: str) -> str:
    """The build's model.pt, byte for byte, to `path`, refused when it is no longer the file the
    record names (edited, truncated or replaced since the build)."""
    package = build["package"]
    try:
        with open(package, "rb") as f:
            data = f.read()
    except OSError as e:
        raise EngineError("build_damaged", f"The build's package {package} cannot be read ({e.strerror or e}); compile the model again.") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != build["sha256"]:
        raise EngineError("build_changed", f"{package} is not the file this build made (its SHA-256 is {digest[:12]}…, the build's {build['sha256'][:12]}…): it was changed after the build. Compile the model again.")
    return write_bytes_atomic(path, data)


def export_build(build_dir: str, path: str, export_unverified: bool = False, accept_edge_mismatch: bool = False) -> dict:
    """Export the build in `build_dir` to `path`: its record's result, with `files.exported` (the
    copy) or `export_skipped` (why nothing was written), and `build` (its identity)."""
    record = read_record(build_dir)
    build, result = record["build"], dict(record["result"])
    result["build"] = build
    result["files"] = dict(result.get("files") or {})
    label = "the partly compiled model" if build.get("partial") else "TVM"
    refusal = export_refusal(result.get("verification"), label, export_unverified, accept_edge_mismatch)
    result.pop("export_skipped", None)
    result["files"].pop("exported", None)
    if refusal:
        result["export_skipped"] = refusal
        return result
    result["files"]["exported"] = copy_package(build, path)
    return result
