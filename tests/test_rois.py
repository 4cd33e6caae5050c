"""ROI sets: every ROI read back with roifile covers exactly its nucleus's pixels."""

from __future__ import annotations

import time
import zipfile
from io import BytesIO

import numpy as np
import pytest
import roifile
from skimage.draw import polygon2mask

from segmentation import Params, segment
from segmentation.measure import measure_objects
from segmentation.rois import outlines, roi_zip, rois


def read_back(data: bytes, folder) -> list[roifile.ImagejRoi]:
    """The ROIs of a RoiSet.zip as Fiji would list them, read by roifile from a file."""
    path = folder / "RoiSet.zip"
    path.write_bytes(data)
    return roifile.roiread(path)


def polygons(roi: roifile.ImagejRoi) -> list[np.ndarray]:
    """x, y corners of each outline of a ROI (several for a composite one)."""
    return roi.coordinates(multi=True) if roi.composite else [roi.coordinates()]


def signed_area(xy: np.ndarray) -> float:
    """Shoelace formula: the polygon's area, positive or negative by its direction."""
    x, y = xy[:, 0].astype(float), xy[:, 1].astype(float)
    return (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2


def shoelace(xy: np.ndarray) -> float:
    return abs(signed_area(xy))


def filled(roi: roifile.ImagejRoi, shape: tuple[int, int]) -> np.ndarray:
    """The pixels whose centre lies inside the ROI, even-odd, as ImageJ makes a ROI's mask."""
    inside = np.zeros(shape, bool)
    for xy in polygons(roi):
        # pixel (r, c) has its centre at ImageJ's (c + 0.5, r + 0.5)
        inside ^= polygon2mask(shape, np.c_[xy[:, 1], xy[:, 0]] - 0.5)
    return inside


def roi_area(roi: roifile.ImagejRoi) -> float:
    """Polygon area; for a composite ROI the sum of its outlines' signed areas (holes run the other way)."""
    return abs(sum(signed_area(xy) for xy in polygons(roi)))


def check_rois(labels: np.ndarray, folder) -> dict[str, float]:
    """Every ROI is named by its label, covers exactly its pixels, and its area is the pixel count."""
    found = read_back(roi_zip(labels), folder)
    ids = [int(v) for v in np.unique(labels) if v]
    assert [r.name for r in found] == [str(i) for i in ids]
    counts = np.bincount(labels.ravel().astype(np.int64)) if labels.any() else np.zeros(1)
    worst = 0.0
    for roi in found:
        label = int(roi.name)
        np.testing.assert_array_equal(filled(roi, labels.shape), labels == label, err_msg=f"ROI {label}")
        worst = max(worst, abs(roi_area(roi) - counts[label]) / counts[label])
        assert roi.roitype == (roifile.ROI_TYPE.RECT if roi.composite else roifile.ROI_TYPE.TRACED)
    return {"rois": len(found), "composite": sum(r.composite for r in found), "worst": worst}


def test_outline_of_a_square_runs_along_its_pixel_edges():
    square = np.zeros((5, 6), bool)
    square[1:3, 2:5] = True  # rows 1-2, columns 2-4: x from 2 to 5, y from 1 to 3
    (corners,) = outlines(square)
    assert sorted(map(tuple, corners.tolist())) == [(2, 1), (2, 3), (5, 1), (5, 3)]
    assert shoelace(corners) == 6


def test_outline_of_a_staircase_keeps_every_step():
    """A diagonal edge is a staircase of pixel edges, not a straight cut: the area stays exact."""
    stairs = np.tril(np.ones((6, 6), bool))
    (corners,) = outlines(stairs)
    assert shoelace(corners) == stairs.sum() == 21
    assert len(corners) == 2 * 6 + 2  # two corners per step, and the two ends of the long vertical side
    assert not outlines(np.zeros((4, 4), bool))


def test_rois_match_the_labels_of_the_sample(sample, tmp_path):
    labels = segment(sample, Params()).labels
    stats = check_rois(labels, tmp_path)
    # the default settings leave holes in two nuclei: composite ROIs keep them out
    assert stats["rois"] == labels.max() and stats["composite"] >= 1
    assert stats["worst"] == 0


def test_rois_match_the_labels_of_a_real_image(dapi16, tmp_path):
    labels = segment(dapi16, Params()).labels
    stats = check_rois(labels, tmp_path)
    assert stats["rois"] == labels.max() > 50 and stats["worst"] == 0


def test_names_are_the_measurement_table_labels(sample, tmp_path):
    result = segment(sample, Params())
    table = measure_objects(result.labels, sample)
    assert [r.name for r in read_back(roi_zip(result.labels), tmp_path)] == table["label"].astype(str).tolist()


def awkward_labels() -> np.ndarray:
    """Holes, touching objects, the image's edges and corners, single pixels, diagonal steps, sparse big ids."""
    labels = np.zeros((40, 50), np.uint32)
    yy, xx = np.mgrid[:40, :50]
    ring = ((yy - 12) ** 2 + (xx - 12) ** 2 <= 64) & ((yy - 12) ** 2 + (xx - 12) ** 2 > 9)
    labels[ring] = 3  # a nucleus with a hole
    labels[11:14, 11:14] = 0
    labels[12, 12] = 3  # ... and an island of itself inside the hole
    labels[0:6, 30:40] = 5  # touching the top edge
    labels[6:12, 30:40] = 6  # touching 5
    labels[30:40, 0:8] = 70000  # the bottom-left corner, a large id
    labels[39, 49] = 9  # one pixel in the bottom-right corner
    labels[20, 40] = labels[21, 41] = labels[22, 42] = 12  # pixels touching by their corners only
    labels[25:35, 20:30] = 13  # a square with two holes
    labels[27, 22] = labels[31:33, 26:28] = 0
    return labels


def test_awkward_objects_do_not_crash_and_keep_their_pixels(tmp_path):
    labels = awkward_labels()
    stats = check_rois(labels, tmp_path)
    assert stats["rois"] == 7 and stats["worst"] == 0
    kinds = {r.name: r.composite for r in rois(labels)}
    assert kinds == {"3": True, "5": False, "6": False, "9": False, "12": False, "13": True, "70000": False}


def test_an_image_without_objects_gives_an_empty_roi_set(tmp_path):
    data = roi_zip(np.zeros((8, 8), np.uint32))
    assert zipfile.ZipFile(BytesIO(data)).namelist() == []
    with pytest.raises(ValueError, match="2-D"):
        roi_zip(np.zeros((2, 8, 8), np.uint32))


def test_the_same_labels_give_the_same_bytes(sample, monkeypatch):
    labels = segment(sample, Params()).labels
    first = roi_zip(labels)
    later = time.localtime(time.time() + 3 * 3600)  # written hours later (a batch on another machine)
    monkeypatch.setattr(time, "localtime", lambda *a: later)
    assert roi_zip(labels) == first
