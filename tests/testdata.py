"""Where test images live: the built-in sample and the real images in ../shared/data (or $NUCLEI_TEST_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "segmentation" / "data" / "sample_nuclei.tif"
SHARED_DATA = Path(os.environ.get("NUCLEI_TEST_DATA") or ROOT.parent / "shared" / "data")


def shared_images(pattern: str = "*/images/*") -> list[Path]:
    """Real images from ../shared/data (empty when that folder is absent)."""
    return sorted(SHARED_DATA.glob(pattern)) if SHARED_DATA.is_dir() else []


def require_shared(pattern: str = "*/images/*") -> list[Path]:
    files = shared_images(pattern)
    if not files:
        pytest.skip(f"real test images not found in {SHARED_DATA} (the shared data folder is absent)")
    return files


def script_call(method, **names):
    """Run a registry entry's ``code``: the plain scikit-image/scipy call the exported script makes."""
    import skimage
    from scipy import ndimage as ndi
    from skimage import filters, measure, morphology, restoration, segmentation
    from skimage.feature import peak_local_max

    scope = {"np": np, "ndi": ndi, "filters": filters, "measure": measure, "morphology": morphology,
             "restoration": restoration, "segmentation": segmentation, "peak_local_max": peak_local_max,
             "skimage": skimage, "peaks_to_mask": _peaks_to_mask}
    scope.update({helper.__name__: helper for helper in method.helpers})
    return eval(method.code, scope, {"s": {}, **names})  # noqa: S307 - our own registry's code


def _peaks_to_mask(coords, shape):
    peaks = np.zeros(shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    return peaks


def rendered(markdown: str) -> str:
    """Markdown source as a reader sees it: without the backslash escapes that keep user text from being markup."""
    import re

    return re.sub(r"\\(.)", r"\1", str(markdown))
