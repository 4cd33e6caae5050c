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


# The command line starts the forkserver before it imports the library, so both import at once on two cores.
EARLY = """
import sys
from multiprocessing import forkserver
from segmentation.workers import start_early
started = start_early(sys.argv[1:])
print(started, forkserver._forkserver._forkserver_pid is not None, "numpy" in sys.modules, "skimage" in sys.modules)
"""


@pytest.mark.parametrize("argv, started", [
    (["in/", "--out", "r.zip", "--workers", "2"], True),
    (["in/", "--out", "r.zip", "--workers=3"], True),
    (["in/", "--out", "r.zip", "--workers", "1"], False),  # one worker: the images run in the command's process
    (["in/", "--out", "r.zip", "--workers", "2", "--scheduler", "local"], False),  # Dask starts its own workers
    (["--help"], False),
    (["in/", "--out", "r.zip", "--workers", "two"], False),  # the command line then says what is wrong
])
def test_the_command_line_starts_its_workers_before_importing_the_library(argv, started):
    import subprocess
    import sys

    from browser import ROOT

    out = subprocess.run([sys.executable, "-c", EARLY, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # (NumPy is imported by nothing on the way: the package and this module import it lazily)
    assert out.stdout.split() == [str(started), str(started), "False", "False"]


def test_the_package_imports_its_names_on_first_use():
    import subprocess
    import sys

    from browser import ROOT

    code = ("import sys, segmentation; before = 'skimage' in sys.modules; from segmentation import Params, segment; "
            "print(before, 'skimage' in sys.modules, segment.__module__, 'suggest' in dir(segmentation)); "
            # the module segmentation.suggest, imported first, does not take the name of its function
            "import segmentation.batch; from segmentation import suggest; print(type(suggest).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True", "segmentation.pipeline", "True", "function"], out.stderr
