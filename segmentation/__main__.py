"""``python -m segmentation INPUT... --out results.zip``: see :mod:`segmentation.cli`."""

from __future__ import annotations

import sys


def run() -> int:
    """The command line, its worker processes started first (they import the library while this process does)."""
    from .workers import start_early

    start_early(sys.argv[1:])
    from .cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
