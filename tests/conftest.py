"""Shared fixtures: the built-in sample and a real 16-bit image."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from testdata import SAMPLE, require_shared


@pytest.fixture(scope="session")
def sample() -> np.ndarray:
    return tifffile.imread(SAMPLE)


@pytest.fixture(scope="session")
def dapi16() -> np.ndarray:
    """A real 12-bit-in-16-bit Hoechst image (U2OS, BoBiAC course)."""
    files = require_shared("bobiac_course/images/u2os_hoechst_003.tif")
    return tifffile.imread(files[0])
