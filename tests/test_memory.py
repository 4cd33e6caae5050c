"""keep_freed_memory: a process that segments image after image reuses its memory instead of faulting in new pages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from browser import ROOT
from segmentation.workers import LocalWorkers

glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator settings are glibc's (Linux)")

# Four "reruns" of the arrays a 2048x2048 image goes through (4-24 MB, a few alive at once), on a thread as in the
# app's script runs; prints the minor page faults of each.
RERUNS = textwrap.dedent("""
    import resource, sys, threading
    import numpy as np
    from segmentation.memory import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory() and keep_freed_memory()
    def rerun():
        alive = []
        for mb in (16, 8, 24, 4, 16, 12, 8, 24):
            alive = [*alive[-2:], np.ones(mb << 17)]
    faults = []
    def runs():
        for _ in range(4):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            rerun()
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    thread = threading.Thread(target=runs)
    thread.start()
    thread.join()
    print(*faults)
""")


def _faults(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", RERUNS, mode], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [int(n) for n in out.stdout.split()]


@glibc_linux
def test_later_runs_reuse_the_memory_of_earlier_ones():
    faults = _faults("keep")
    assert faults[0] > 1000  # the first run does fault its memory in (about 100 MB)...
    assert max(faults[2:]) < 50, faults  # ...and later ones find it again (by default: about 500 faults each here)


@glibc_linux
def test_the_setting_is_for_the_whole_process_and_numpy_stops_asking_for_huge_pages():
    code = ("from segmentation.memory import keep_freed_memory, hugepage_switch; advise = hugepage_switch(); "
            "before = advise(True); advise(before); "
            "print(before, keep_freed_memory(), keep_freed_memory(), advise(True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    _, applied, again, after = out.stdout.split()
    assert (applied, again, after) == ("True", "True", "False")
    # a server's administrator can turn it off
    off = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "NUCLEI_KEEP_FREED_MEMORY": "0"})
    numpy_default, applied, again, after = off.stdout.split()
    assert (applied, again, after) == ("False", "False", numpy_default)


def test_batch_workers_keep_their_memory():
    from segmentation.memory import hugepage_switch

    pool = LocalWorkers(1, limit=None)
    try:
        # returns the worker's setting before this call: off since the worker started
        assert pool.submit(hugepage_switch(), False).result(timeout=120) is False
    finally:
        pool.shutdown()
