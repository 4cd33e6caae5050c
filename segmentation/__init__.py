"""Classic segmentation of fluorescent nuclei: filter, threshold, refine, split, measure.

>>> from segmentation import Params, segment
"""

from __future__ import annotations

from .errors import SegmentationError
from .io import ImageReadError, load_plane, read_image
from .params import Params
from .pipeline import Result, segment
from .suggest import Suggestion, suggest

__all__ = ["Params", "Result", "segment", "suggest", "Suggestion", "load_plane", "read_image", "ImageReadError",
           "SegmentationError"]
__version__ = "0.1.0"
