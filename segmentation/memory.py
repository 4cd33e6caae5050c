"""Memory use of a process that segments one large image after another.

A 2048x2048 image goes through a dozen arrays of 4-32 MB per run.  By default
glibc hands the freed ones back to the kernel, and NumPy asks the kernel for
transparent huge pages for each new one, which it must zero, and often compact
memory for, on first touch.  So every run pays for fresh memory again in
kernel time.  :func:`keep_freed_memory` keeps freed memory in the process for
the next run, in ordinary pages.

Measured on the 2-core test machine (``benchmarks/batch_bench.py`` and
``benchmarks/browser_bench.py``): a batch worker's first image spent 0.23 s in
the kernel by default and 0.09 s with it; a sigma change on the Segment page,
180-470 ms by default and 0-120 ms with it.  User time did not change.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

__all__ = ["keep_freed_memory", "hugepage_switch"]

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to 32 MB come from the reusable heap
TRIM_THRESHOLD = 256 << 20  # free memory kept at the top of a heap before it is given back
TOP_PAD = 64 << 20  # a heap grows by this much extra, and a whole free heap is kept

_applied: bool | None = None


def hugepage_switch() -> Callable[[bool], bool] | None:
    """NumPy's switch for asking the kernel for huge pages (it returns the previous setting), if it has one."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # NumPy 1.x
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    return _set_madvise_hugepage


def keep_freed_memory() -> bool:
    """Keep freed memory for the next image, and use ordinary pages for NumPy arrays.

    For this whole process; call it once at the start of a program (the app,
    the command line, each batch worker).  Later calls do nothing.  Memory is
    given back to the kernel only above 256 MB free (per glibc arena), so a
    process stays at about its largest image's working set.  The environment
    variable ``NUCLEI_KEEP_FREED_MEMORY=0`` turns it off.

    Returns
    -------
    bool
        Whether glibc's allocator took the settings (Linux); elsewhere only
        NumPy's huge-page advice is switched off, and the answer is False.
    """
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("NUCLEI_KEEP_FREED_MEMORY", "1").strip() == "0":
        _applied = False
        return _applied
    advise = hugepage_switch()
    if advise is not None:
        advise(False)
    _applied = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (e.g. musl without mallopt)
            return _applied
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _applied = all(mallopt(param, value) == 1 for param, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    return _applied
