"""The nuclei as an ImageJ ROI set: ``RoiSet.zip`` for Fiji's ROI Manager.

Each nucleus becomes the ROI that Fiji's own *Analyze Particles > Add to
Manager* would make: a traced polygon along the pixel edges around the
object, so that Fiji measures the same area as the label image's pixel count.
A nucleus with a hole (or in several pieces) becomes a composite ROI of all
its outlines, which Fiji fills even-odd: the hole stays out, as in the label
image.  The file format is written by ``roifile`` (by the author of
tifffile), not by hand.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from roifile import ROI_TYPE, ImagejRoi
from skimage import measure

__all__ = ["outlines", "roi_zip", "rois"]

# Java's PathIterator segment types, as ImageJ stores composite ROIs
_MOVETO, _LINETO, _CLOSE = 0, 1, 4


def outlines(mask: np.ndarray) -> list[np.ndarray]:
    """The pixel-edge outlines of one object: its outer outline, and one per hole.

    Parameters
    ----------
    mask : (M, N) bool ndarray
        The object's pixels.

    Returns
    -------
    list of (K, 2) int ndarray
        x, y of each outline's corners in ImageJ's coordinates, where pixel
        ``(row, col)`` is the unit square from ``(col, row)`` to
        ``(col + 1, row + 1)``; the largest outline first.  Filling them
        even-odd gives back exactly `mask`.  Empty for an empty mask.

    Notes
    -----
    :func:`skimage.measure.find_contours` at level 0.5 draws each outline
    through the middle of the pixel edges between the object and the rest,
    and cuts every corner of it with a diagonal.  Going round each cut corner
    instead, through the pixel corner where its two edges meet, gives the
    outline along the pixel edges: the corners of that polygon are exactly
    the corners of the diagonals.

    Examples
    --------
    >>> square = np.zeros((5, 5), bool); square[1:3, 2:4] = True
    >>> [p.tolist() for p in outlines(square)]  # the 2 x 2 square from x = 2, y = 1
    [[[2, 3], [2, 1], [4, 1], [4, 3]]]
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1).astype(np.uint8)  # closes the outlines of objects at the border
    # 'high': pixels that touch by a corner belong together, as in measure.label
    contours = measure.find_contours(padded, 0.5, fully_connected="high")
    polygons = []
    for contour in sorted(contours, key=_enclosed_area, reverse=True):
        start, end = contour[:-1], contour[1:]  # closed: the last point is the first
        diagonal = (start != end).all(axis=1)
        start, end = start[diagonal], end[diagonal]
        # the corner of a cut: of each end, the coordinate that lies on a pixel edge (a half-integer)
        corner = np.where(start % 1 == 0.5, start, end)
        # to ImageJ's x, y: -1 for the padding, +0.5 from a pixel's centre to its edge
        polygons.append(np.rint(corner[:, ::-1] - 0.5).astype(np.int64))
    return polygons


def _enclosed_area(points: np.ndarray) -> float:
    """Area inside a closed polygon (shoelace formula)."""
    y, x = points[:, 0], points[:, 1]
    return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2


def rois(labels: np.ndarray) -> list[ImagejRoi]:
    """One ROI per object, named by its label, in label order.

    Parameters
    ----------
    labels : (M, N) int ndarray
        0 = background; ids need not be consecutive.

    Returns
    -------
    list of roifile.ImagejRoi
        A traced polygon for an object with one outline, a composite ROI
        (even-odd) for one with holes or in several pieces.  The ROI's
        ``name`` is the label number, as in the measurement table's ``label``
        column.

    Raises
    ------
    ValueError
        When `labels` is not 2-D.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, not {labels.ndim}-D")
    out = []
    for region in measure.regionprops(labels):
        top, left = region.bbox[:2]
        polygons = [p + [left, top] for p in outlines(region.image)]
        out.append(_roi(polygons, str(region.label)))
    return out


def _roi(polygons: list[np.ndarray], name: str) -> ImagejRoi:
    """A traced polygon ROI for one outline, a composite ROI for several."""
    if len(polygons) == 1:
        roi = ImagejRoi.frompoints(polygons[0], name=name)
        roi.roitype = ROI_TYPE.TRACED  # as Fiji's Analyze Particles and wand tool make them
    else:
        # a composite ROI: a path of closed polygons, in absolute coordinates
        path = [[_MOVETO, *p[0], *np.c_[np.full(len(p) - 1, _LINETO), p[1:]].ravel(), _CLOSE] for p in polygons]
        roi = ImagejRoi(name=name, roitype=ROI_TYPE.RECT)
        roi.multi_coordinates = np.concatenate(path).astype(np.float32)
        roi.shape_roi_size = roi.multi_coordinates.size
    corners = np.concatenate(polygons)
    roi.left, roi.top = (int(v) for v in corners.min(axis=0))
    roi.right, roi.bottom = (int(v) for v in corners.max(axis=0))  # the outline's bounds, as ImageJ writes them
    return roi


def roi_zip(labels: np.ndarray) -> bytes:
    """The objects of `labels` as an ImageJ ROI set (``RoiSet.zip``).

    Open it in Fiji with *File > Open* or the ROI Manager's *More > Open*.
    Each ROI is named by its label number, to match the ``label`` column of
    the measurement table, and covers exactly the object's pixels (see
    :func:`rois`), so that Fiji measures the same area.

    Parameters
    ----------
    labels : (M, N) int ndarray
        0 = background.

    Returns
    -------
    bytes
        A zip holding one ``<label>.roi`` per object, in label order (an
        empty zip when there is no object).

    Examples
    --------
    >>> import roifile, tempfile, os
    >>> labels = np.zeros((6, 8), np.uint32); labels[1:4, 1:5] = 7
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "RoiSet.zip")
    ...     _ = open(path, "wb").write(roi_zip(labels))
    ...     [(r.name, r.left, r.top, r.right, r.bottom) for r in roifile.roiread(path)]
    [('7', 1, 1, 5, 4)]
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for roi in rois(labels):
            # a fixed date: the same labels give the same bytes, whenever and wherever they are written
            entry = zipfile.ZipInfo(f"{roi.name}.roi", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, roi.tobytes())
    return buffer.getvalue()
