"""Classic segmentation of fluorescent nuclei: filter, threshold, refine, split, measure.

>>> from segmentation import Params, segment

The names below are imported on first use, so that ``python -m segmentation``
can start its worker processes before this process has imported NumPy and
scikit-image (they import them meanwhile, on another core).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import SegmentationError
    from .io import ImageReadError, load_plane, read_image
    from .params import Params
    from .pipeline import Result, segment
    from .suggest import Suggestion, suggest

_WHERE = {
    "SegmentationError": ".errors", "ImageReadError": ".io", "load_plane": ".io", "read_image": ".io",
    "Params": ".params", "Result": ".pipeline", "segment": ".pipeline", "Suggestion": ".suggest",
    "suggest": ".suggest",
}
__all__ = ["Params", "Result", "segment", "suggest", "Suggestion", "load_plane", "read_image", "ImageReadError",
           "SegmentationError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


class _Package(types.ModuleType):
    """This package: its ``suggest`` stays the function when the module ``segmentation.suggest`` is imported
    (the import system sets the module as an attribute of its package; eager imports used to rebind it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
