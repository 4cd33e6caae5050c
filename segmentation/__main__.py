"""``python -m segmentation INPUT... --out results.zip``: see :mod:`segmentation.cli`."""

from .cli import main

raise SystemExit(main())
