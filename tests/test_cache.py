"""segmentation/cache.py: one computation per key, bounded in bytes, read-only values; events, no sleeps."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from segmentation.cache import Cache, freeze, nbytes

WAIT = 30  # seconds: only guards against a hang, never decides a result


def test_each_key_is_computed_once_and_running_work_is_shared():
    cache = Cache(max_bytes=10_000, workers=2)
    release = threading.Event()
    calls = []

    def slow():
        calls.append(threading.get_ident())
        assert release.wait(WAIT)
        return np.zeros(100, bool)

    f1 = cache.submit("a", slow)
    f2 = cache.submit("a", slow)  # while it runs: the same future
    assert f2 is f1 and not f1.done()
    release.set()
    value = f1.result(WAIT)
    f3 = cache.submit("a", slow)
    assert f3.done() and f3.result() is value
    assert cache.get("a", slow) is value
    assert len(calls) == 1 and "a" in cache and len(cache) == 1


def test_get_waits_for_the_same_key_computed_by_another_thread():
    cache = Cache(max_bytes=10_000)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        assert release.wait(WAIT)
        return np.ones(10)

    first = threading.Thread(target=cache.get, args=("k", slow))
    first.start()
    assert started.wait(WAIT)
    got = []
    second = threading.Thread(target=lambda: got.append(cache.get("k", slow)))
    second.start()
    release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert len(calls) == 1 and got and got[0].sum() == 10


def test_submits_run_in_parallel():
    cache = Cache(max_bytes=10_000, workers=2)
    both = threading.Barrier(2, timeout=WAIT)  # breaks (and fails the test) unless both run at once

    def meet(tag):
        both.wait()
        return tag

    futures = [cache.submit(k, meet, k) for k in "ab"]
    assert [f.result(WAIT) for f in futures] == ["a", "b"]


def test_least_recently_used_go_first_beyond_the_size():
    cache = Cache(max_bytes=250)
    for key in "abc":
        cache.get(key, lambda: np.zeros(100, np.uint8))
    assert "a" not in cache and "b" in cache and "c" in cache
    assert cache.nbytes == 200
    cache.get("b", lambda: None)  # a hit makes b the most recent
    cache.get("d", lambda: np.zeros(100, np.uint8))
    assert "b" in cache and "c" not in cache
    too_big = cache.get("e", lambda: np.zeros(1000, np.uint8))  # returned, not kept
    assert too_big.size == 1000 and "e" not in cache


def test_a_failure_is_not_kept():
    cache = Cache(max_bytes=1000, workers=1)

    def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cache.submit("x", boom).result(WAIT)
    with pytest.raises(RuntimeError):
        cache.get("y", boom)
    assert "x" not in cache and "y" not in cache
    assert cache.get("x", lambda: 3) == 3


def test_kept_values_are_read_only_all_the_way_down():
    @dataclass
    class Pair:
        a: np.ndarray
        b: tuple

    cache = Cache(max_bytes=10_000)
    value = cache.get("p", lambda: Pair(np.zeros(3), (np.ones(2), {"c": np.arange(4)})))
    assert not value.a.flags.writeable
    assert not value.b[0].flags.writeable and not value.b[1]["c"].flags.writeable
    assert nbytes(value) == 3 * 8 + 2 * 8 + 4 * np.arange(4).itemsize
    assert not freeze(np.zeros(2)).flags.writeable


def test_submit_needs_worker_threads():
    with pytest.raises(RuntimeError, match="no worker threads"):
        Cache(max_bytes=10).submit("k", lambda: 1)
