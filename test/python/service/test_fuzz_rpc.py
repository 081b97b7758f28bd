"""Bounded property-based fuzzing in CI: a few hundred generated inputs per target (the full
10,000-input runs are `npm run fuzz:engine`, scripts/fuzz_engine.py, with the same properties):
no crash, no hang, every failure a sentence."""

import importlib.util
import os

from _export_helpers import REPO

_spec = importlib.util.spec_from_file_location("fuzz_engine", os.path.join(REPO, "scripts", "fuzz_engine.py"))
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

BUDGET = int(os.environ.get("TORCHTVM_FUZZ_EXAMPLES", "300"))


def _clean(stats):
    assert stats["inputs"] >= BUDGET * 0.9, stats
    assert (stats["crashes"], stats["hangs"], stats["not_sentences"]) == (0, 0, 0), stats["examples"]


def test_spec_parser_fuzz():
    stats = fuzz.fuzz_specs(BUDGET)
    _clean(stats)
    assert stats["accepted"] > 0 and stats["refused"] > 0  # the generator reaches both outcomes


def test_engine_rpc_fuzz():
    stats = fuzz.fuzz_rpc(BUDGET)
    _clean(stats)
    assert stats["replies"] > 0
