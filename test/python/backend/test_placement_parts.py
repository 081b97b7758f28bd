"""Parts of a total add up to it: the placement report's library and TVM times come from a profiled
run (slower than the measured p50: profiling costs time), so they are that run's shares scaled to
the p50 shown beside them, and the report says so (issue 22: library 291.3 ms + TVM 20.1 ms against
a p50 of 289.8 ms)."""

import pytest

from torchtvm.backend import placement
from torchtvm.backend.offload import Offload


def _ops():
    return [Offload("conv", "conv2d", [1, 8, 8, 64], func="torchtvm.conv2d"), Offload("fc", "linear", [1, 10], func="torchtvm.linear")]


def test_parts_are_shares_of_the_profiled_run_scaled_to_the_p50():
    profile = placement.Profile(calls_ms=[281.2, 10.1], funcs=["torchtvm.conv2d", "torchtvm.linear"], run_ms=311.4, rest_ms=20.1)
    rep = placement.report("library", _ops(), [], profile, 289.8)
    assert rep["library_ms"] + rep["tvm_ms"] == pytest.approx(289.8)
    assert rep["library_ms"] == pytest.approx(289.8 * (291.3 / 311.4))
    assert sum(o["ms"] for o in rep["ops"]) == pytest.approx(rep["library_ms"])
    assert [o["share"] for o in rep["ops"]] == pytest.approx([281.2 / 311.4, 10.1 / 311.4])
    assert rep["profiled_ms"] == 311.4 and rep["parts_of"] == "p50"


def test_without_a_measurement_the_parts_are_the_profiled_runs_own():
    profile = placement.Profile(calls_ms=[5.0, 1.0], funcs=["torchtvm.conv2d", "torchtvm.linear"], run_ms=8.0, rest_ms=2.0)
    rep = placement.report("library", _ops(), [], profile, None)
    assert (rep["library_ms"], rep["tvm_ms"], rep["parts_of"]) == (pytest.approx(6.0), pytest.approx(2.0), "profiled run")
