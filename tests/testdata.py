"""Where test images live: the built-in sample and the real images in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "segmentation" / "data" / "sample_nuclei.tif"
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_images(pattern: str = "*/images/*") -> list[Path]:
    """Real images from ../shared/data (empty when that folder is absent)."""
    return sorted(SHARED_DATA.glob(pattern)) if SHARED_DATA.is_dir() else []


def require_shared(pattern: str = "*/images/*") -> list[Path]:
    files = shared_images(pattern)
    if not files:
        pytest.skip(f"real test images not found in {SHARED_DATA} (the shared data folder is absent)")
    return files
