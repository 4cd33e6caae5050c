"""``skimage.filters.threshold_li(image)`` on a float image: the same cutoff, without sorting every pixel.

scikit-image iterates Li's update until a step is no larger than its
tolerance, half the smallest gap between two distinct intensities, which it
finds by sorting the whole image (``np.unique``); before that it copies the
image twice, to drop NaN and infinite values.  Here the iterations are
scikit-image's own, line for line, so every step is the same number; only
the stop is decided with less work (110 instead of 180 ms at 2048×2048):

- a step of 0 always stops, and the first step always runs when the mean is
  above 0 (it is measured from ``-2 * tolerance``);
- the smallest gap in a sample of the pixels is at least the smallest gap in
  all of them (rounding is monotonic), so a step larger than half of it goes
  on;
- any other step needs the exact tolerance: then the whole image is sorted,
  as scikit-image does.

Integer images (scikit-image iterates on their histogram), images with NaN
or infinite values, and other float types go to scikit-image.  ``tests/test_threshold.py``
compares both on real and random images.
"""

from __future__ import annotations

import numpy as np
from skimage import filters

__all__ = ["threshold_li"]

SAMPLE = 1 << 16  # pixels whose smallest gap bounds the tolerance


def threshold_li(image: np.ndarray) -> float:
    """The cutoff of ``skimage.filters.threshold_li(image)``, bit for bit.

    Examples
    --------
    >>> img = np.linspace(0, 1, 400).reshape(20, 20) ** 3
    >>> bool(threshold_li(img) == filters.threshold_li(img))
    True
    """
    image = np.asarray(image)
    if image.dtype not in (np.float32, np.float64) or image.size < 2 or not np.isfinite(image).all():
        return filters.threshold_li(image)
    work = image.reshape(-1).copy()  # scikit-image's image[~np.isnan(image)]: every pixel, in order
    if np.all(work == work[0]):
        return work[0]
    image_min = np.min(work)
    work -= image_min
    exact: list = []  # scikit-image's tolerance, once it is needed

    def tolerance():
        if not exact:
            exact.append(np.min(np.diff(np.unique(work))) / 2)
        return exact[0]

    stride = max(1, work.size // SAMPLE)
    sample = np.unique(work[::stride])
    above = np.min(np.diff(sample)) / 2 if sample.size > 1 else None  # >= the tolerance
    if stride == 1:  # the sample is every pixel: its bound is the tolerance
        exact.append(above)

    def goes_on(step) -> bool:  # scikit-image's `step > tolerance`
        if not exact:
            if not step > 0:  # 0 (or NaN) never exceeds a tolerance of 0 or more
                return False
            if above is not None and step > above:
                return True
        return bool(step > tolerance())

    t_next = np.mean(work)
    if not t_next > 0 and not abs(t_next - -2 * tolerance()) > tolerance():
        return t_next + image_min
    t_curr = t_next
    while True:
        foreground = work > t_curr
        if foreground.all() or not foreground.any():  # a mean of nothing: scikit-image says what it says
            return filters.threshold_li(image)
        mean_fore = np.mean(work[foreground])
        mean_back = np.mean(work[~foreground])
        if mean_back == 0.0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
        if not goes_on(abs(t_next - t_curr)):
            break
        t_curr = t_next
    return t_next + image_min
