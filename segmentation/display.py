"""Pictures for people: contrast stretch, label colours, outlines, small PNGs.

Pure numpy (and Pillow for PNG encoding): the app and the exported overlays
use the same functions.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = [
    "WORKING_COPY_ABOVE",
    "format_value",
    "subsample",
    "histogram_counts",
    "display_range",
    "downsample_factor",
    "downsample",
    "stretch",
    "stretch_between",
    "label_colors",
    "colorize_labels",
    "inner_boundaries",
    "outline_overlay",
    "overlay_png",
    "png_bytes",
]

# Above this many pixels the Segment page offers a 2x downsampled working copy while tuning.
WORKING_COPY_ABOVE = 4096 * 4096
OUTLINE_RGB = (255, 220, 0)  # kept objects: yellow
REMOVED_RGB = (255, 0, 255)  # removed by refinement: magenta
SEED_RGB = (255, 40, 40)
HALO_RGB = (20, 20, 20)  # just outside the outlines of thumbnails


def subsample(image: np.ndarray, pixels: int = 1_000_000) -> np.ndarray:
    """Every k-th row and column, so that `pixels` to 4x `pixels` remain: enough for percentiles and histograms.

    >>> subsample(np.zeros((4000, 3000)), 1_000_000).shape
    (1334, 1000)
    """
    if image.ndim != 2:  # e.g. one value per nucleus
        return image.ravel()[:: max(1, image.size // pixels)]
    step = max(1, int(np.sqrt(image.size / pixels)))
    return image[::step, ::step]


def histogram_counts(image: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts and bin edges of `image` (from ~1 M pixels at most), in its own units."""
    return np.histogram(subsample(np.asarray(image)).ravel(), bins=bins)


def display_range(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The intensities at two percentiles (of ~1 M pixels): what a contrast stretch maps to black and white."""
    lo, hi = np.percentile(subsample(np.asarray(image)).astype(np.float32), [low, high])
    return float(lo), float(hi)


def format_value(value: float) -> str:
    """An intensity as people read it, the same everywhere: whole numbers without a fraction, others with
    5 significant digits (one decimal from 1000 up), never in exponent notation.

    >>> format_value(33421.0), format_value(33421.171875), format_value(534.4921875), format_value(0.0286123)
    ('33421', '33421.2', '534.49', '0.028612')
    """
    if float(value).is_integer() or abs(value) >= 1e6:
        return f"{value:.0f}"
    if abs(value) >= 1000:
        return f"{value:.1f}"
    return f"{float(f'{value:.5g}'):f}".rstrip("0").rstrip(".") if abs(value) >= 1e-4 else f"{value:.5g}"


def downsample_factor(shape: tuple[int, ...], max_side: int = 1000) -> int:
    """Integer step so that the longest side is at most `max_side` px."""
    return max(1, int(np.ceil(max(shape[:2]) / max_side)))


def downsample(image: np.ndarray, step: int) -> np.ndarray:
    """Every `step`-th pixel (nearest neighbour: keeps label ids and mask values)."""
    return image if step == 1 else image[::step, ::step]


def stretch(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Contrast-stretch to uint8 between two percentiles.

    Parameters
    ----------
    image : (M, N) ndarray
    low, high : float
        Percentiles mapped to 0 and 255.

    Examples
    --------
    >>> stretch(np.array([[0, 50, 100]]), 0, 100).tolist()
    [[0, 127, 255]]
    """
    return stretch_between(image, *display_range(image, low, high))


def stretch_between(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map intensities `low`..`high` to 0..255 (uint8), clipping outside.

    >>> stretch_between(np.array([[0, 5, 10, 20]]), 0, 10).tolist()
    [[0, 127, 255, 255]]
    """
    if high <= low:
        high = low + 1
    out = np.clip((np.asarray(image, dtype=np.float32) - low) / (high - low), 0, 1) * 255
    return out.astype(np.uint8)


def label_colors(n: int, seed: int = 0) -> np.ndarray:
    """(n + 1, 3) uint8 colour table; row 0 (background) is black."""
    lut = np.random.default_rng(seed).integers(60, 256, (n + 1, 3), dtype=np.uint8)
    lut[0] = 0
    return lut


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """Distinct colours on black, as (M, N, 3) uint8."""
    return label_colors(int(labels.max()))[labels]


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Object pixels with an edge neighbour of another label (or background).

    Same as ``skimage.segmentation.find_boundaries(labels, mode="inner")``,
    a few times faster.

    >>> inner_boundaries(np.array([[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]])).astype(int).tolist()
    [[0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]]
    """
    edge = np.zeros(labels.shape, dtype=bool)
    down = labels[1:] != labels[:-1]
    right = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= down
    edge[:-1] |= down
    edge[:, 1:] |= right
    edge[:, :-1] |= right
    return edge & (labels != 0)


def outline_overlay(
    image_u8: np.ndarray,
    labels: np.ndarray,
    removed: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
    seed_radius: int = 1,
    halo: bool = False,
) -> np.ndarray:
    """Object outlines (yellow) and removed objects (magenta) on a grey image.

    Parameters
    ----------
    image_u8 : (M, N) uint8
        Contrast-stretched background picture.
    labels : (M, N) int
    removed : (M, N) bool, optional
        Pixels dropped by refinement; their outlines are drawn in magenta.
    seeds : (K, 2) int, optional
        Row, column of seeds, drawn as red dots of `seed_radius` px.
    halo : bool
        Also darken the pixels just outside each object, so that the yellow
        outline still shows on saturated (white) nuclei, e.g. in small thumbnails.
    """
    rgb = np.repeat(image_u8[..., None], 3, axis=2)
    if halo and labels.any():
        rgb[inner_boundaries((labels == 0).view(np.uint8))] = HALO_RGB
    _draw(rgb, labels, removed, seeds, seed_radius, (OUTLINE_RGB, REMOVED_RGB, SEED_RGB))
    return rgb


def _draw(canvas: np.ndarray, labels, removed, seeds, seed_radius: int, colors: tuple) -> None:
    """Removed outlines, then object outlines, then seed dots, in `colors` (RGB triples or palette indices)."""
    outline, gone, seed = colors
    if removed is not None and removed.any():
        canvas[inner_boundaries(removed)] = gone
    if labels.any():
        canvas[inner_boundaries(labels)] = outline
    if seeds is not None and len(seeds):
        h, w = canvas.shape[:2]
        for dr in range(-seed_radius, seed_radius + 1):
            for dc in range(-seed_radius, seed_radius + 1):
                canvas[np.clip(seeds[:, 0] + dr, 0, h - 1), np.clip(seeds[:, 1] + dc, 0, w - 1)] = seed


# The overlay as a palette PNG: 253 grey levels, then outline, removed and seed colours. A third of
# the bytes of an RGB PNG to compress: 2.6x faster to write at 2048² (benchmarks/outputs_bench.py).
_GREYS = 253
_GREY_INDEX = ((np.arange(256) * (_GREYS - 1) + 127) // 255).astype(np.uint8)
_PALETTE = [round(i * 255 / (_GREYS - 1)) for i in range(_GREYS) for _ in range(3)]
_PALETTE += [*OUTLINE_RGB, *REMOVED_RGB, *SEED_RGB]


def overlay_png(
    image_u8: np.ndarray,
    labels: np.ndarray,
    removed: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
    seed_radius: int = 1,
) -> bytes:
    """:func:`outline_overlay` as a palette PNG (grey within half a level of `image_u8`; colours exact).

    >>> from PIL import Image
    >>> labels = np.zeros((8, 8), int); labels[2:6, 2:6] = 1
    >>> rgb = np.asarray(Image.open(io.BytesIO(overlay_png(np.full((8, 8), 90, np.uint8), labels))).convert("RGB"))
    >>> rgb[2, 2].tolist(), rgb[3, 3].tolist()
    ([255, 220, 0], [90, 90, 90])
    """
    indexed = _GREY_INDEX[image_u8]
    _draw(indexed, labels, removed, seeds, seed_radius, (_GREYS, _GREYS + 1, _GREYS + 2))
    picture = Image.fromarray(indexed, mode="P")
    picture.putpalette(_PALETTE)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_bytes(image: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode a uint8 grey or RGB array as PNG (fast, level 1)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
