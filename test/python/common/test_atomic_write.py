"""The engine's writes on a full disk: the write fails with the OS's error, the old file stays
whole, and no temp file is left behind (issue 23: a full home left *.tmp files)."""

from __future__ import annotations

import os

import pytest

from conftest import fill_disk
from torchtvm.backend.kernel_choices import TimingCache
from torchtvm.common.atomic_write import write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(small_disk):
    path = os.path.join(small_disk, "state.json")
    write_text_atomic(path, '{"v": 1}')
    fill_disk(small_disk)
    with pytest.raises(OSError) as e:
        write_text_atomic(path, '{"v": 2, "pad": "' + "x" * 200_000 + '"}')
    assert e.value.errno == 28  # ENOSPC
    assert open(path).read() == '{"v": 1}'
    assert sorted(os.listdir(small_disk)) == ["filler", "state.json"]


def test_the_kernel_timing_cache_warns_and_goes_on_when_home_is_full(small_disk, monkeypatch):
    monkeypatch.setenv("TORCHTVM_HOME", small_disk)
    cache = TimingCache()
    cache.put("k" * 64, {"library": 1.0, "packed": 0.5})
    fill_disk(small_disk)
    warnings = []
    cache.save(lambda msg, level: warnings.append((msg, level)))
    assert warnings and "not cached" in warnings[0][0]
    assert [n for n in os.listdir(small_disk) if ".tmp" in n] == []
