"""Fuzzing of the export loader: torch.classes.torchtvm.Module(metadata, library), what torch.jit.load
runs for every exported .pt, on mutations of a real export's metadata and library.

Mutations: random byte edits of the metadata text and of the library (the hashes then refuse them);
edits of chosen metadata entries (deleted, retyped, nested deep, made huge) with the metadata's
digest computed again; and structural edits of the library (truncated, extended, header fields
changed) with the library's hash, its size and the metadata's digest computed again, as someone
crafting a file would. Random edits of the library's code with its hashes recomputed are left out:
code that loads is run (that is what loading a .pt means, and the README says so).

Property: no signal kills the loading process; every refusal is a torch error with a sentence.
The cases run in child processes, a chunk at a time; a child killed by a signal is recorded with
the case that killed it, and the next child goes on after it.

    .venv/bin/python scripts/fuzz_export.py [--cases 10000] [--seed 0] [--json]

`npm run fuzz:export` runs 10,000 cases (a few minutes); test/python/deploy/test_export_checks.py
runs one chunk in CI. Prints: cases, loaded, refused, signals (with the first cases that raised one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "native", "engine"))

CHUNK = 500
ZEROS = b"0" * 64


def reseal(meta: bytes) -> bytes:
    m = re.search(rb'"integrity_sha256": "([0-9a-f]{64})"', meta)
    if not m:
        return meta
    digest = hashlib.sha256(meta.replace(m.group(1), ZEROS, 1)).hexdigest().encode()
    return meta.replace(m.group(1), digest, 1)


def rebind(meta: bytes, lib: bytes) -> bytes:
    """The metadata with the library's hash and size set to `lib`'s, then resealed."""
    meta = re.sub(rb'"library_sha256": "[0-9a-f]{64}"', b'"library_sha256": "%s"' % hashlib.sha256(lib).hexdigest().encode(), meta, count=1)
    meta = re.sub(rb'"library_bytes": \d+', b'"library_bytes": %d' % len(lib), meta, count=1)
    return reseal(meta)


def _flip(rng: random.Random, data: bytes, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        op = rng.randrange(3)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif b:
            del b[i:i + rng.randint(1, 16)]
    return bytes(b)


_KEYS = [b"format_version", b"cpu_features", b"inputs", b"num_outputs", b"device", b"library_kernels", b"target", b"dims", b"dtype", b"name", b"calling_convention"]
_VALUES = [b"null", b"true", b"-1", b"1e308", b"99999999999999999999", b'""', b'"x"', b"[]", b"{}", b"[" * 3000 + b"]" * 3000, b"[" * 70 + b"]" * 70, b'"' + b"a" * 100000 + b'"']


def mutate(rng: random.Random, meta: bytes, lib: bytes) -> tuple[str, bytes, bytes]:
    kind = rng.randrange(6)
    if kind == 0:
        return "metadata bytes", _flip(rng, meta, rng.randint(1, 4)), lib
    if kind == 1:
        return "library bytes", meta, _flip(rng, lib, rng.randint(1, 4))
    if kind == 2:  # one entry's value replaced, digest recomputed
        key = rng.choice(_KEYS)
        m = re.search(rb'"' + key + rb'": ', meta)
        if m:
            end = m.end()
            # replace the value up to the next ", " or "}" at the same level (roughly: first one)
            stop = min([i for i in (meta.find(b', "', end), meta.find(b"}", end)) if i > 0] or [len(meta)])
            meta = meta[:end] + rng.choice(_VALUES) + meta[stop:]
        return f"entry {key.decode()} replaced, resealed", reseal(meta), lib
    if kind == 3:  # an entry deleted, digest recomputed
        key = rng.choice(_KEYS)
        return f"entry {key.decode()} renamed, resealed", reseal(meta.replace(b'"' + key + b'"', b'"' + key + b'_gone"', 1)), lib
    if kind == 4:  # the library cut or extended, hashes recomputed
        cut = rng.choice([rng.randrange(len(lib)), len(lib) // 2, 64, 16, 0, len(lib) + rng.randint(1, 4096)])
        new = lib[:cut] if cut <= len(lib) else lib + bytes(rng.randrange(256) for _ in range(cut - len(lib)))
        return f"library cut to {cut} bytes, rebound", rebind(meta, new), new
    # an ELF header field changed, hashes recomputed
    b = bytearray(lib)
    field = rng.choice([(4, 1), (5, 1), (16, 2), (18, 2), (32, 8), (40, 8), (54, 2), (56, 2), (58, 2), (60, 2)])
    off, size = field
    b[off:off + size] = rng.randrange(256 ** size).to_bytes(size, "little")
    return f"ELF header bytes {off}..{off + size} changed, rebound", rebind(meta, bytes(b)), bytes(b)


def _child(meta_path: str, lib_path: str, seed: int, start: int, stop: int, out_path: str) -> None:
    """Runs cases [start, stop); appends one JSON line per case as it ends (flushed before the
    next starts, so the parent knows which case a signal interrupted)."""
    import torch

    import torchtvm  # noqa: F401 - registers torch.classes.torchtvm

    meta0, lib0 = open(meta_path, "rb").read(), open(lib_path, "rb").read()
    with open(out_path, "a", encoding="utf-8") as out:
        for i in range(start, stop):
            rng = random.Random(seed * 1_000_003 + i)
            what, meta, lib = mutate(rng, meta0, lib0)
            out.write(json.dumps({"case": i, "what": what, "state": "started"}) + "\n")
            out.flush()
            try:
                text = meta.decode("utf-8", errors="replace")
                torch.classes.torchtvm.Module(text, torch.frombuffer(bytearray(lib), dtype=torch.uint8) if lib else torch.empty(0, dtype=torch.uint8))
                result = "loaded"
            except Exception as e:  # a refusal: torch's error with the runtime's sentence
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                result = "refused"
                if not msg:
                    result = "refused without a sentence"
            out.write(json.dumps({"case": i, "what": what, "state": result}) + "\n")
            out.flush()


def make_export(folder: str) -> tuple[bytes, bytes]:
    """A real export of a small model (the tests' own): its metadata text and library bytes."""
    import torch

    sys.path.insert(0, os.path.join(REPO, "test", "python"))
    from _export_helpers import compile_and_export

    files = compile_and_export("multi_output", folder)["files"]
    meta = torch.jit.load(files["exported"]).torchtvm_module.metadata()
    with open(files["library"], "rb") as f:
        return meta.encode("utf-8"), f.read()


def run(cases: int, seed: int, folder: str) -> dict:
    meta, lib = make_export(folder)
    meta_path, lib_path = os.path.join(folder, "meta.json"), os.path.join(folder, "lib.so")
    open(meta_path, "wb").write(meta)
    open(lib_path, "wb").write(lib)
    log = os.path.join(folder, "cases.jsonl")
    counts = {"cases": 0, "loaded": 0, "refused": 0, "refused without a sentence": 0, "signals": 0}
    killed: list[dict] = []
    start = 0
    while start < cases:
        stop = min(cases, start + CHUNK)
        open(log, "w").close()
        code = f"import sys; sys.path.insert(0, {REPO!r} + '/scripts'); import fuzz_export as f; f._child({meta_path!r}, {lib_path!r}, {seed}, {start}, {stop}, {log!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "TMPDIR": folder})
        lines = [json.loads(line) for line in open(log, encoding="utf-8") if line.strip()]
        done = [r for r in lines if r["state"] != "started"]
        for r in done:
            counts["cases"] += 1
            counts[r["state"]] += 1
        last = lines[-1] if lines else None
        if proc.returncode != 0:
            # the case that was running when the child died
            case = last["case"] if last and last["state"] == "started" else start
            counts["cases"] += 1
            counts["signals"] += 1
            killed.append({"case": case, "what": last["what"] if last else "?", "returncode": proc.returncode, "stderr": proc.stderr[-300:]})
            start = case + 1
        else:
            start = stop
    left = [n for n in os.listdir(folder) if n.startswith("torchtvm-") and n.endswith(".so")]
    return {**counts, "killed": killed[:10], "private_copies_left": len(left)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="torchtvm-fuzz-export-") as folder:
        r = run(args.cases, args.seed, folder)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"export loader: {r['cases']} cases: {r['loaded']} loaded, {r['refused']} refused with a sentence, "
              f"{r['refused without a sentence']} refused without one, {r['signals']} killed by a signal; "
              f"{r['private_copies_left']} private copies left")
        for k in r["killed"]:
            print(f"  case {k['case']} ({k['what']}): exit {k['returncode']}")
    return 1 if r["signals"] or r["refused without a sentence"] or r["private_copies_left"] else 0


if __name__ == "__main__":
    sys.exit(main())
