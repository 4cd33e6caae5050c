"""Suggest settings for the classic pipeline from the image itself.

:func:`suggest` measures a few properties of one image and turns each into
settings by a plain rule, so that every suggested value can be explained to a
biologist and adjusted in the sidebar afterwards.

What is measured (on a lightly blurred copy):

- **polarity**: after a rough Otsu cut the background is one large connected
  region and the nuclei are many small ones; whichever side is broken into
  small pieces holds the nuclei (bright or dark);
- **typical nucleus diameter**: from the objects of a rough mask, each object
  counted once: a convex object is one nucleus (diameter of the disk of equal
  area), a clump of touching nuclei is measured by the largest disk that fits
  in it (its distance transform);
- **uneven background**: an opening one nucleus wide leaves the background;
  its spread across the field is compared with the nucleus contrast;
- **histogram shape**: Otsu's separability of the flattened image (its
  between-class share of the variance): two clear classes, or one background
  peak with a long tail; and bright debris, when Otsu's cut keeps only a few
  objects where Li's lower cut keeps many;
- **contrast and noise**: the typical nucleus intensity above the background,
  and the pixel noise (median absolute Laplacian, Immerkær 1996);
- **holes** inside the rough nuclei (hollow or uneven staining).

The rules (:func:`_suggestion`) scale every size with the diameter (blur,
background radius, local window, minimum and maximum size, seeds) and every
intensity with the contrast, so that they hold for 8-, 12- or 16-bit images,
signed offsets, small or large nuclei:

- two clear classes → a local threshold three nuclei wide, a tenth of the
  contrast above the local mean (dim and bright nuclei are both found);
  one peak with a tail, or bright debris → Li after a top-hat;
- an uneven background (spread over half the contrast) → top-hat with a
  radius of one diameter (bright nuclei only: the pipeline's top-hat keeps
  bright structures);
- blur sigma a 15th of the diameter, more if needed to bring the noise under
  half the cutoff's margin; holes filled up to one nucleus;
- objects under a fifth or over ten nuclei removed; h-maxima seeds on the
  distance map smoothed by a tenth of the radius; objects without a seed kept.

The constants below were chosen on the first half of a varied development set
(dsb2018_dev, 30 images from many microscopes) and checked on its second half
and on other sets (``benchmarks/quality.py``).

The measurements use an overview of the whole field, at most
:data:`OVERVIEW_SIDE` px per side, and a central detail view reduced only as
far as nuclei stay :data:`DETAIL_DIAMETER` px wide (full resolution for small
nuclei), so that :func:`suggest` takes about 0.2 s on a 2048×2048 image.  It
is a classic, deterministic computation: no trained model, no randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import filters as skfilters
from skimage import morphology, transform

from .io import ImageReadError
from .params import Params
from .refine import fill_holes

__all__ = ["Suggestion", "suggest"]

# The overview of the whole field is at most this many px per side (mean of pixel blocks) ...
OVERVIEW_SIDE = 512
# ... the detail view at most this many, reduced only as far as nuclei stay this many px wide.
DETAIL_SIDE = 768
DETAIL_DIAMETER = 20
# At most this many objects are measured one by one for their shape (evenly chosen).
MAX_SHAPES = 300
# Below this diameter (px) nothing nucleus-like was found: the course's defaults are kept.
MIN_DIAMETER = 4.0
# ... and also when the nuclei stand fewer than this many noise standard deviations above the background.
MIN_CONTRAST_TO_NOISE = 3.0
# Rough objects smaller than a disk of radius 1.5 px are specks.
MIN_OBJECT_AREA = math.pi * 1.5**2
# An object at least this solid (area over convex-hull area) is one nucleus, not a clump.
CONVEX = 0.9
# Background spread across the field above this share of the nucleus contrast -> subtract it.
UNEVEN = 0.5
# Otsu separability from which the histogram counts as two clear classes.
BIMODAL = 0.6
# Local threshold: a window this many nuclei wide; cutoff this share of the nucleus contrast above its mean.
LOCAL_WINDOW = 3.0
LOCAL_MARGIN = 0.1
# Blur: sigma is a 15th of the diameter, or more when needed to bring the noise under half the cutoff margin.
DIAMETERS_PER_SIGMA = 15.0
# Holes covering at least this share of the rough nuclei's area are worth filling.
HOLES = 0.001
# Minimum size: this share of the typical nucleus area.
MIN_SIZE_SHARE = 0.2
# Maximum size: objects larger than this many typical nuclei are clumps or debris.
MAX_SIZE_NUCLEI = 10
# Seeds: h-maxima of the distance map smoothed over this share of the typical radius, rising
# this share of the radius above the saddle to their neighbour.
SEED_SMOOTH_SHARE = 0.1
SEED_H_SHARE = 0.07


@dataclass(frozen=True)
class Suggestion:
    """Suggested settings, the reasons for them and the measurements behind them.

    Attributes
    ----------
    params : Params
        Ordinary settings: shown in the sidebar, saved and exported like any others.
    reasons : tuple of str
        What was measured and what it set, one plain-language line each.
    measured : bool
        False when nothing nucleus-like was found and the course's defaults
        were kept (``reasons`` says why); the measurements are then None.
    diameter_px : float or None
        Typical nucleus diameter (px).
    polarity : {'bright', 'dark'} or None
        Nuclei brighter or darker than the background.
    contrast : float or None
        Typical nucleus intensity above the background, in the image's units.
    noise : float or None
        Standard deviation of the pixel noise, in the image's units.
    background_unevenness : float or None
        Spread of the background across the field (5th to 95th percentile)
        as a share of ``contrast``.
    separability : float or None
        Otsu's between-class share of the variance of the flattened image:
        near 1 for two clear classes, low for one peak with a long tail.
    bright_debris : bool or None
        Otsu's cut kept only a few very bright objects, fewer than half as
        many as Li's lower cut: debris far brighter than the nuclei.
    hole_share : float or None
        Share of the rough nuclei's area that is holes.
    """

    params: Params
    reasons: tuple[str, ...]
    measured: bool = True
    diameter_px: float | None = None
    polarity: str | None = None
    contrast: float | None = None
    noise: float | None = None
    background_unevenness: float | None = None
    separability: float | None = None
    bright_debris: bool | None = None
    hole_share: float | None = None

    def record(self) -> dict[str, object]:
        """The measurements as one flat row, e.g. for the batch's ``summary.csv``."""

        def rounded(v: float | None, digits: int) -> float | None:
            return None if v is None else float(_significant(v, digits))

        return {
            "suggest_measured": self.measured,
            "suggest_diameter_px": None if self.diameter_px is None else round(self.diameter_px, 1),
            "suggest_polarity": self.polarity,
            "suggest_contrast": rounded(self.contrast, 4),
            "suggest_noise": rounded(self.noise, 3),
            "suggest_background_unevenness": rounded(self.background_unevenness, 3),
            "suggest_separability": rounded(self.separability, 3),
            "suggest_bright_debris": self.bright_debris,
            "suggest_hole_share": rounded(self.hole_share, 3),
        }


def suggest(image: np.ndarray) -> Suggestion:
    """Suggest pipeline settings for one 2-D image of nuclei.

    Parameters
    ----------
    image : (M, N) ndarray
        One plane in its own intensity units: 8-, 12- or 16-bit, signed
        offsets and floats all work, only differences of intensity are used.

    Returns
    -------
    Suggestion
        ``.params`` for :func:`segmentation.segment`, ``.reasons`` to show,
        and the measurements.  An image with nothing nucleus-like in it
        (constant, pure noise, smaller than 8 px) gets the course's defaults
        (``Params()``) with ``measured=False`` and a reason: it never raises
        for a 2-D image.

    Raises
    ------
    ImageReadError
        The array is not a 2-D image of numbers.

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = np.full((128, 128), 100, np.uint16)
    >>> for cy, cx in [(30, 30), (30, 90), (90, 40), (95, 95)]:
    ...     img[(yy - cy) ** 2 + (xx - cx) ** 2 < 12 ** 2] = 2000
    >>> s = suggest(img)
    >>> round(s.diameter_px), s.polarity, s.params.objects
    (24, 'bright', 'bright')
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype.kind not in "uif":
        raise ImageReadError(
            f"suggest() needs one 2-D plane of intensities; got an array of shape {image.shape} "
            f"and type {image.dtype}"
        )
    # Edge cases first: nothing to measure on these, say so and keep the defaults.
    if min(image.shape) < 8:
        return _defaults(f"the image is only {image.shape[1]}×{image.shape[0]} px, too small to measure nuclei")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        return _defaults("the image contains NaN or infinite values")
    if image.min() == image.max():
        return _defaults("every pixel has the same value")
    measures = _measure(image)
    if isinstance(measures, str):
        return _defaults(measures)
    return _suggestion(measures)


# --- rules: from the measurements to settings and reasons --------------------------------


@dataclass
class _Measures:
    diameter: float  # px
    polarity: str
    contrast: float  # intensity units
    noise: float  # intensity units
    unevenness: float  # share of the contrast
    separability: float
    debris: bool
    hole_share: float


def _suggestion(m: _Measures) -> Suggestion:
    d = m.diameter
    r = d / 2
    area = math.pi * r * r
    bright = m.polarity == "bright"
    reasons = []

    # sizes from the diameter
    min_size = max(1, int(round(MIN_SIZE_SHARE * area)))
    max_size = int(round(MAX_SIZE_NUCLEI * area))
    distance_sigma = round(SEED_SMOOTH_SHARE * r, 1)
    h = max(0.5, round(SEED_H_SHARE * r, 1))
    reasons.append(
        f"typical nucleus ≈ {d:.0f} px across → objects under {min_size} px (a fifth of a nucleus) "
        f"or over {max_size} px ({MAX_SIZE_NUCLEI} nuclei: clumps, debris) are removed; touching nuclei "
        f"are split where the outline narrows (h-maxima seeds, h {h:g} px, on the distance map "
        f"smoothed by {distance_sigma:g} px)"
    )
    if not bright:
        reasons.append("nuclei are darker than the background → 'Nuclei are: dark'")

    # blur from the diameter, more if the noise needs it
    margin = LOCAL_MARGIN * m.contrast
    # a Gaussian blur divides white noise by 2·sqrt(pi)·sigma: bring it under half the cutoff margin
    sigma_for_size = _round_half(max(0.5, d / DIAMETERS_PER_SIGMA))
    sigma = max(sigma_for_size, _round_half(m.noise / (math.sqrt(math.pi) * margin)))
    if sigma > sigma_for_size:
        reasons.append(
            f"noisy image: noise {_fmt(m.noise)} against a nucleus contrast of {_fmt(m.contrast)} → "
            f"blur sigma {sigma:g} px"
        )
    else:
        reasons.append(
            f"noise {_fmt(m.noise)} is low against a nucleus contrast of {_fmt(m.contrast)} → "
            f"blur sigma {sigma:g} px (a {DIAMETERS_PER_SIGMA:g}th of a nucleus)"
        )

    background, radius = "none", Params().background_radius
    if m.unevenness > UNEVEN:
        if bright:
            background, radius = "tophat", float(max(1, round(d)))
            reasons.append(
                f"background varies across the field by {m.unevenness:.0%} of the nucleus contrast → "
                f"top-hat background subtraction, radius {radius:g} px (one nucleus across)"
            )
        else:
            reasons.append(
                f"background varies across the field by {m.unevenness:.0%} of the nucleus contrast; "
                "background subtraction is for bright nuclei only, the local threshold follows it instead"
            )

    # threshold from the histogram's shape
    window = _odd(LOCAL_WINDOW * d)
    if (m.separability >= BIMODAL and not m.debris) or not bright:
        method, offset = "local", (-margin if bright else margin)
        shape = (
            f"histogram has two clear classes (separability {m.separability:.2f})"
            if m.separability >= BIMODAL
            else f"histogram has one peak with a long tail (separability {m.separability:.2f})"
        )
        reasons.append(
            f"{shape} → local threshold, so that dim and bright nuclei are both found: each pixel is "
            f"compared with the mean of a {window} px window (three nuclei) and must be {_fmt(margin)} "
            f"{'above' if bright else 'below'} it (a tenth of the nucleus contrast; Offset "
            f"{_fmt(-margin if bright else margin)} in the sidebar)"
        )
    else:
        method, offset = "li", 0.0
        why = (
            "a few very bright objects (debris) stand far above the nuclei"
            if m.debris
            else f"separability {m.separability:.2f}"
        )
        reasons.append(
            f"histogram has one peak with a long bright tail ({why}): dim nuclei among bright debris "
            "or haze → Li threshold (lower than Otsu, keeps the dim nuclei)"
        )
        if background == "none":
            background, radius = "tophat", float(max(1, round(d)))
            reasons.append(f"… with top-hat background subtraction (radius {radius:g} px) to remove the haze")

    # holes: measured, or likely with a local cutoff (the dimmer middle of a large nucleus)
    holes = m.hole_share >= HOLES
    fill = holes or method == "local"
    if fill:
        why = (
            f"holes inside nuclei ({m.hole_share:.1%} of their area)"
            if holes
            else "a local cutoff can leave out the dimmer middle of a nucleus"
        )
        reasons.append(f"{why} → fill holes up to the size of one nucleus ({int(area)} px)")
    reasons.append("objects without a watershed seed are kept (often nuclei cut by the image border)")
    params = Params(
        background=background,
        background_radius=radius,
        filter="gaussian",
        sigma=sigma,
        threshold_method=method,
        block_size=window,
        offset=float(_significant(offset, 3)),
        objects=m.polarity,
        min_size=min_size,
        closing_radius=1,
        fill_holes=fill,
        max_hole_size=int(area) if fill else 0,
        split="watershed",
        seed_method="h_maxima",
        distance_sigma=float(distance_sigma),
        h=float(h),
        keep_unseeded=True,
        max_size=max_size,
    )
    return Suggestion(
        params=params,
        reasons=tuple(reasons),
        diameter_px=d,
        polarity=m.polarity,
        contrast=m.contrast,
        noise=m.noise,
        background_unevenness=m.unevenness,
        separability=m.separability,
        bright_debris=m.debris,
        hole_share=m.hole_share,
    )


def _defaults(why: str) -> Suggestion:
    return Suggestion(params=Params(), reasons=(f"{why} → the course's default settings are kept",), measured=False)


# --- measurements ---------------------------------------------------------------------------


def _measure(image: np.ndarray) -> _Measures | str:
    """All measurements in the units of `image`, or the reason why none could be made.

    Two views keep this fast on large images: an overview of the whole field
    (at most OVERVIEW_SIDE px per side) gives the polarity, a first size and
    the background's spread; a detail view (at most DETAIL_SIDE px per side,
    central, reduced only as far as nuclei stay DETAIL_DIAMETER px wide, so at
    full resolution for small nuclei) gives the diameter, the histogram's
    shape, the contrast and the holes.
    """
    # 1. overview of the whole field
    fa = max(1, math.ceil(max(image.shape) / OVERVIEW_SIDE))
    smooth = ndi.gaussian_filter(_block_mean(image, fa), 1.0)
    if smooth.max() - smooth.min() <= 0:
        return "the image is constant once lightly blurred"
    cutoff = skfilters.threshold_otsu(smooth)
    polarity = _polarity(smooth, cutoff)
    sign = 1.0 if polarity == "bright" else -1.0  # measure dark nuclei as bright ones
    d0 = _diameter(_cut(sign * smooth)[0]) * fa  # full-resolution px
    if not d0 > 0:
        return "no objects were found"
    background = _background(sign * smooth, d0 / fa)
    spread = float(np.percentile(background, 95) - np.percentile(background, 5))
    # 2. detail view, where nuclei are at least DETAIL_DIAMETER px wide (if the overview saw them right)
    fb = max(1, min(fa, int(d0 // DETAIL_DIAMETER)))
    detail = sign * ndi.gaussian_filter(_block_mean(_central_crop(image, DETAIL_SIDE * fb), fb), 1.0)
    m = _measure_detail(detail, d0 / fb)
    if isinstance(m, str) and fb < fa:  # nothing in the middle of the field: measure on the overview
        fb, m = fa, _measure_detail(sign * smooth, d0 / fa)
    if isinstance(m, str):
        return m
    d, contrast, separability, debris, hole_share = m
    noise = _noise(_central_crop(image, 512))
    if image.dtype.kind in "ui":  # rounding to whole levels adds noise of 1/sqrt(12) of a level
        noise = max(noise, 1 / math.sqrt(12))
    diameter = d * fb
    if diameter < MIN_DIAMETER:
        return "no nucleus-like objects were found, only specks a few pixels wide"
    if contrast < MIN_CONTRAST_TO_NOISE * noise:
        return (
            f"the brightest objects stand only {contrast / noise:.1f} noise levels out from the "
            "background: no nuclei could be told from the noise"
        )
    return _Measures(diameter, polarity, contrast, noise, spread / contrast, separability, debris, hole_share)


def _measure_detail(smooth: np.ndarray, guess: float) -> tuple[float, float, float, bool, float] | str:
    """Diameter (px of `smooth`), contrast, separability, debris and hole share of a blurred view.

    `guess` is a first diameter (px of `smooth`) for the background's radius.
    """
    flat = smooth - _background(smooth, guess)
    if flat.max() - flat.min() <= 0:
        return "nothing is left once the smooth background is removed"
    objects, li, separability, debris = _cut(flat)
    d = _diameter(objects)
    if not d > 0:
        d = guess
    contrast, hole_share = _contrast(flat, li, d)
    if not contrast > 0:
        return "no object stands out from the background"
    return d, contrast, separability, debris, hole_share


def _cut(smooth: np.ndarray) -> tuple[_Rough, _Rough, float, bool]:
    """Rough objects to measure sizes on, Li's objects, the histogram's separability, debris.

    Otsu's cut measures sizes best when the histogram has two clear classes.
    Li's lower cut keeps the dim nuclei too: it is used when the histogram has
    one peak with a tail, and when Otsu's cut keeps only a few very bright
    objects (fewer than half as many as Li's): bright debris, which make the
    histogram look like two classes.
    """
    otsu = skfilters.threshold_otsu(smooth)
    li = _rough(smooth, skfilters.threshold_li(smooth))
    separability = _separability(smooth, otsu)
    if separability < BIMODAL:
        return li, li, separability, False
    by_otsu = _rough(smooth, otsu)
    if 2 * _count(by_otsu) < _count(li):
        return li, li, separability, True
    return by_otsu, li, separability, False


def _count(objects: _Rough) -> int:
    """Number of objects at least as large as a disk of radius 1.5 px."""
    return int(np.count_nonzero(objects.area >= MIN_OBJECT_AREA))


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """float32 copy reduced by `factor` along each axis (mean of factor×factor blocks)."""
    img = np.asarray(image, dtype=np.float32)
    if factor <= 1:
        return img
    h, w = img.shape[0] // factor, img.shape[1] // factor
    return img[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


def _central_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape
    r, c = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[r : r + side, c : c + side]


def _polarity(smooth: np.ndarray, cutoff: float) -> str:
    """'bright' when the pixels above the cutoff are the ones broken into small pieces."""
    above = smooth > cutoff
    return "bright" if _largest_share(~above) >= _largest_share(above) else "dark"


def _largest_share(mask: np.ndarray) -> float:
    """Share of the mask's pixels in its largest (4-connected) piece."""
    labels, n = ndi.label(mask)
    if n == 0:
        return 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return float(sizes.max() / sizes.sum())


@dataclass
class _Rough:
    """The objects of a rough mask, holes filled."""

    mask: np.ndarray
    holes: np.ndarray  # the pixels the filling added
    labels: np.ndarray
    area: np.ndarray  # px, per object


def _rough(smooth: np.ndarray, cutoff: float) -> _Rough:
    above = smooth > cutoff
    mask = fill_holes(above)
    labels, _ = ndi.label(mask)
    return _Rough(mask, mask & ~above, labels, np.bincount(labels.ravel())[1:].astype(float))


def _diameter(objects: _Rough) -> float:
    """Typical diameter: the median over objects weighted by their inscribed radius.

    A convex object is one nucleus: its diameter is that of the disk of equal
    area.  Any other object is a clump (or a ragged blob): its nuclei are as
    wide as the largest disk that fits in it (the maximum of its distance
    transform).  Weighting by that radius keeps specks of noise from counting
    as much as nuclei, and one large blob of haze from counting as much as
    all the nuclei together.  At most MAX_SHAPES objects, evenly chosen, are
    measured.
    """
    keep = np.flatnonzero(objects.area >= MIN_OBJECT_AREA)
    if keep.size > MAX_SHAPES:
        keep = keep[np.linspace(0, keep.size - 1, MAX_SHAPES).round().astype(int)]
    if keep.size == 0:
        return float("nan")
    boxes = ndi.find_objects(objects.labels)
    radius, solidity = np.empty(keep.size), np.empty(keep.size)
    for i, k in enumerate(keep):
        own = np.pad(objects.labels[boxes[k]] == k + 1, 1)
        radius[i] = ndi.distance_transform_edt(own).max()
        solidity[i] = objects.area[k] / max(1, np.count_nonzero(morphology.convex_hull_image(own)))
    diameter = np.where(solidity >= CONVEX, 2 * np.sqrt(objects.area[keep] / np.pi), 2 * radius)
    return _weighted_median(diameter, radius)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _background(smooth: np.ndarray, diameter: float) -> np.ndarray:
    """The smooth background under the nuclei: opening with a square one diameter in half-width.

    Computed on a grid coarse enough that a nucleus is about 8 px wide on it,
    then interpolated back to the size of `smooth`.
    """
    step = max(1, int(diameter // 8))
    coarse = _block_mean(smooth, step)
    side = 2 * max(1, int(round(diameter / step))) + 1
    opened = ndi.uniform_filter(ndi.grey_opening(coarse, size=(side, side)), side)
    if step == 1:
        return opened
    full = transform.resize(opened, (coarse.shape[0] * step, coarse.shape[1] * step), order=1)
    pad = ((0, smooth.shape[0] - full.shape[0]), (0, smooth.shape[1] - full.shape[1]))
    return np.pad(full, pad, mode="edge")


def _contrast(flat: np.ndarray, objects: _Rough, diameter: float) -> tuple[float, float]:
    """Median over nucleus-sized objects of their mean above the background, and their share of holes."""
    n = len(objects.area)
    if n == 0:
        return 0.0, 0.0
    radius = np.sqrt(objects.area / np.pi)
    r = diameter / 2
    chosen = np.flatnonzero((radius >= r / 2) & (radius <= 2 * r)) + 1
    if chosen.size == 0:
        chosen = np.arange(1, n + 1)
    level = np.bincount(objects.labels.ravel(), flat.ravel(), n + 1)[chosen] / objects.area[chosen - 1]
    outside = ~ndi.binary_dilation(objects.mask, iterations=2)
    base = float(np.median(flat[outside])) if outside.any() else float(flat.min())
    inside = np.zeros(n + 1, dtype=bool)
    inside[chosen] = True
    inside = inside[objects.labels]
    hole_share = float(np.count_nonzero(objects.holes & inside)) / max(1, np.count_nonzero(inside))
    return float(np.median(level) - base), float(hole_share)


def _separability(flat: np.ndarray, cutoff: float) -> float:
    """Otsu's between-class variance over the total variance (0 to 1)."""
    v = flat.ravel().astype(np.float64)
    above = v > cutoff
    w = float(above.mean())
    if w in (0.0, 1.0) or v.var() == 0:
        return 0.0
    between = w * (1 - w) * (v[above].mean() - v[~above].mean()) ** 2
    return float(between / v.var())


_LAPLACIAN = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _noise(image: np.ndarray) -> float:
    """Pixel noise (standard deviation) from the median absolute Laplacian (Immerkær 1996).

    The kernel's squared weights sum to 36, so white noise of standard
    deviation s gives a response of standard deviation 6 s; the median keeps
    the nuclei's edges out.
    """
    response = ndi.convolve(np.asarray(image, dtype=np.float32), _LAPLACIAN, mode="reflect")
    return float(1.4826 * np.median(np.abs(response)) / 6)


# --- formatting ----------------------------------------------------------------------------


def _odd(x: float) -> int:
    n = max(3, int(round(x)))
    return n if n % 2 else n + 1


def _round_half(x: float) -> float:
    return round(x * 2) / 2


def _significant(x: float, digits: int) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return round(float(x), -int(math.floor(math.log10(abs(x)))) + digits - 1)


def _fmt(x: float) -> str:
    return f"{_significant(x, 3):g}"
