"""Jobs for tests of segmentation/workers.py: module-level, so that worker processes can import them."""

from __future__ import annotations

import os


def square_or_die(n: int) -> int:
    """n², except for n == 3, whose worker process dies on the spot (as an out-of-memory kill would)."""
    if n == 3:
        os._exit(1)
    return n * n


def died(n: int) -> str:
    return f"died on {n}"


def allocate(gigabytes: float) -> str:
    """Try to allocate that much memory; say what happened."""
    try:
        block = bytearray(int(gigabytes * (1 << 30)))
        return f"allocated {len(block)} bytes"
    except MemoryError:
        return "MemoryError"


def niceness() -> int:
    return os.nice(0)
