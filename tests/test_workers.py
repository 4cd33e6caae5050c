"""segmentation/workers.py: a dead worker takes only its own image; workers are bounded and run behind the app."""

from __future__ import annotations

import pytest

from segmentation.workers import NICENESS, LocalWorkers, memory_limit, outcomes
from worker_jobs import allocate, died, niceness, square_or_die


def test_a_worker_that_dies_takes_only_its_own_job():
    pool = LocalWorkers(2, limit=None)
    try:
        got = list(outcomes(range(10), square_or_die, pool, in_flight=4, should_stop=lambda: False, died=died))
    finally:
        pool.shutdown()
    assert sorted(g for g in got if isinstance(g, int)) == [n * n for n in range(10) if n != 3]
    assert [g for g in got if isinstance(g, str)] == ["died on 3"]
    assert len(got) == 10


def test_the_pool_is_rebuilt_after_a_death_and_keeps_working():
    pool = LocalWorkers(2, limit=None)
    try:
        list(outcomes([3], square_or_die, pool, in_flight=2, should_stop=lambda: False, died=died))
        assert pool.submit(square_or_die, 5).result(timeout=60) == 25
    finally:
        pool.shutdown()


def test_stop_drops_the_queued_jobs():
    pool = LocalWorkers(1, limit=None)
    seen = []
    try:
        for result in outcomes(range(20), square_or_die, pool, in_flight=1, should_stop=lambda: len(seen) >= 2,
                               died=died):
            seen.append(result)
    finally:
        pool.shutdown()
    assert 2 <= len(seen) <= 3 and seen[:2] == [0, 1]


def test_workers_run_under_an_address_space_limit_and_behind_the_app():
    pool = LocalWorkers(1, limit=3 << 30)
    try:
        assert pool.submit(allocate, 6).result(timeout=60) == "MemoryError"
        assert pool.submit(allocate, 0.5).result(timeout=60).startswith("allocated")
        assert pool.submit(niceness).result(timeout=60) >= NICENESS
    finally:
        pool.shutdown()


def test_memory_limit_shares_the_machine_and_can_be_set(monkeypatch):
    monkeypatch.delenv("NUCLEI_WORKER_MEMORY_GB", raising=False)
    one, four = memory_limit(1), memory_limit(4)
    assert one is not None and four is not None and one >= four >= 2 << 30
    monkeypatch.setenv("NUCLEI_WORKER_MEMORY_GB", "3")
    assert memory_limit(4) == 3 << 30
    monkeypatch.setenv("NUCLEI_WORKER_MEMORY_GB", "0")
    assert memory_limit(4) is None
    monkeypatch.setenv("NUCLEI_WORKER_MEMORY_GB", "lots")
    with pytest.raises(ValueError, match="NUCLEI_WORKER_MEMORY_GB"):
        memory_limit(4)
