"""Step 1: reduce noise (and optionally subtract background).

Every output stays in the raw image's intensity units: a 16-bit image filtered
here still has values around its own range, never rescaled to 0-1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage import filters as skfilters
from skimage import morphology, restoration

from .registry import Method

if TYPE_CHECKING:
    from .params import Params

__all__ = ["FILTERS", "BACKGROUNDS", "subtract_background", "apply_filter", "filter_image"]


def _gaussian(image: np.ndarray, sigma: float, size: int) -> np.ndarray:
    if sigma == 0:
        return np.asarray(image, dtype=np.float64)
    return skfilters.gaussian(image, sigma=sigma, preserve_range=True)


def _mean(image: np.ndarray, sigma: float, size: int) -> np.ndarray:
    return ndi.uniform_filter(np.asarray(image, dtype=np.float64), size=size)


def _median(image: np.ndarray, sigma: float, size: int) -> np.ndarray:
    return ndi.median_filter(image, size=size)


# Noise filters: func(image, sigma, size) -> filtered image in the image's units.
FILTERS: dict[str, Method] = {
    "none": Method("None", "No filter: the raw image is thresholded.", lambda image, sigma, size: np.asarray(image),
                   "img"),
    "mean": Method("Mean", "Averages a square window of 'kernel size' px.", _mean,
                   'ndi.uniform_filter(img.astype(float), size=s["filter_size"])'),
    "gaussian": Method("Gaussian", "Blurs smoothly with width 'sigma' (the course's default).", _gaussian,
                       'filters.gaussian(img, sigma=s["sigma"], preserve_range=True) if s["sigma"] > 0 '
                       'else img.astype(float)'),
    "median": Method("Median", "The middle value of a square window: removes salt-and-pepper noise and keeps "
                     "edges sharp.", _median, 'ndi.median_filter(img, size=s["filter_size"])'),
}


def _rolling_ball(image: np.ndarray, radius: float) -> np.ndarray:
    return image - restoration.rolling_ball(image, radius=radius)


def _tophat(image: np.ndarray, radius: float) -> np.ndarray:
    # The 'sequence' decomposition gives the same disk in a fraction of the time.
    footprint = morphology.disk(int(round(radius)), decomposition="sequence")
    return morphology.white_tophat(image, footprint=footprint)


# Background subtraction: func(float64 image, radius) -> image minus background.
BACKGROUNDS: dict[str, Method] = {
    "none": Method("None", "No background subtraction.", lambda image, radius: image, "img"),
    "rolling_ball": Method("Rolling ball", "Fiji's rolling ball: removes smooth background larger than the "
                           "radius (slow on large images).", _rolling_ball,
                           'img - restoration.rolling_ball(img, radius=s["background_radius"])'),
    "tophat": Method("White top-hat", "Removes everything larger than a disk of the radius; much faster than "
                     "the rolling ball.", _tophat,
                     'morphology.white_tophat(img, footprint=morphology.disk(int(round(s["background_radius"])), '
                     'decomposition="sequence"))'),
}


def subtract_background(image: np.ndarray, method: str, radius: float) -> np.ndarray:
    """Remove smooth background larger than `radius`.

    Parameters
    ----------
    image : (M, N) ndarray
        Raw image.
    method : str
        One of :data:`BACKGROUNDS`: rolling ball as in Fiji
        (:func:`skimage.restoration.rolling_ball`) or white top-hat with a disk
        (:func:`skimage.morphology.white_tophat`).
    radius : float
        Radius in pixels; larger than the largest nucleus.

    Returns
    -------
    (M, N) float64 ndarray
        Image minus background, in the image's units.
    """
    if method not in BACKGROUNDS:
        raise ValueError(f"unknown background method {method!r}")
    return BACKGROUNDS[method].func(np.asarray(image, dtype=np.float64), radius)


def apply_filter(image: np.ndarray, method: str, sigma: float = 1.0, size: int = 3) -> np.ndarray:
    """Apply one noise filter, keeping the image's intensity units.

    Parameters
    ----------
    image : (M, N) ndarray
    method : str
        One of :data:`FILTERS`:
        ``'gaussian'`` is :func:`skimage.filters.gaussian` with `sigma` and
        ``preserve_range=True``; ``'mean'`` is :func:`scipy.ndimage.uniform_filter`
        and ``'median'`` :func:`scipy.ndimage.median_filter`, both with a square
        footprint of `size` px.

    Returns
    -------
    (M, N) ndarray
        float64 for 'gaussian' and 'mean'; the input dtype for 'median' and
        'none' (the median of integers is an integer).
    """
    if method not in FILTERS:
        raise ValueError(f"unknown filter {method!r}")
    return FILTERS[method].func(image, sigma, size)


def filter_image(image: np.ndarray, params: Params) -> np.ndarray:
    """Background subtraction (if any) then the noise filter set in `params`.

    Examples
    --------
    >>> import numpy as np
    >>> from segmentation import Params
    >>> img = np.full((5, 5), 1000, dtype=np.uint16)
    >>> round(float(filter_image(img, Params()).max()), 6)  # not rescaled to 0-1
    1000.0
    """
    img = image
    if params.background != "none":
        img = subtract_background(image, params.background, params.background_radius)
    return apply_filter(img, params.filter, sigma=params.sigma, size=params.filter_size)
