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


@pytest.fixture(autouse=True)
def strict_app_tests(request, monkeypatch):
    """Every AppTest run fails on an exception, and on an error box unless the test is marked
    ``@pytest.mark.shows_errors`` (it then checks the messages itself).

    The pages turn problems into error boxes instead of tracebacks; without this a crash in,
    say, the downloads would pass every test that does not look at that part of the page.
    """
    from streamlit.testing.v1 import AppTest

    allow_errors = request.node.get_closest_marker("shows_errors") is not None
    real_run = AppTest._run

    def checked_run(self, *args, **kwargs):
        at = real_run(self, *args, **kwargs)
        assert not at.exception, [e.value for e in at.exception]
        if not allow_errors:
            assert not at.error, f"unexpected error box(es): {[e.value for e in at.error]}"
        return at

    monkeypatch.setattr(AppTest, "_run", checked_run)
