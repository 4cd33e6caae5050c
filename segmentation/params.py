"""Every setting of the pipeline in one frozen dataclass.

`Params` flows unchanged from the app's sidebar to :func:`segmentation.segment`,
to the settings JSON, to the batch and to the exported script.  Defaults are the
classic course recipe: Gaussian sigma 1, Otsu, remove objects smaller than
10 px, closing with ``disk(1)``, watershed with a 25 px footprint and
``min_distance`` 10.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "Params",
    "FILTERS",
    "BACKGROUNDS",
    "THRESHOLD_METHODS",
    "AUTO_THRESHOLD_METHODS",
    "SEED_METHODS",
    "SPLIT_METHODS",
    "STAGE_FIELDS",
    "HELP",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
]

SCHEMA_NAME = "nuclei-segmentation-settings"
SCHEMA_VERSION = 1

FILTERS = ("none", "mean", "gaussian", "median")
BACKGROUNDS = ("none", "rolling_ball", "tophat")
AUTO_THRESHOLD_METHODS = ("otsu", "li", "triangle", "yen", "isodata", "mean", "minimum")
THRESHOLD_METHODS = ("manual", *AUTO_THRESHOLD_METHODS, "local")
OBJECTS = ("bright", "dark")
SPLIT_METHODS = ("none", "watershed")
SEED_METHODS = ("peak_local_max", "h_maxima")

# Which fields each pipeline stage reads; a stage must be recomputed only when
# one of its own fields (or an upstream stage) changes.
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "plane": ("channel", "z", "t"),
    "filter": ("background", "background_radius", "filter", "sigma", "filter_size"),
    "threshold": ("threshold_method", "threshold_value", "block_size", "offset", "objects"),
    "refine": ("min_size", "closing_radius", "opening_radius", "fill_holes", "max_hole_size"),
    "split": ("split", "seed_method", "footprint", "min_distance", "distance_sigma", "h", "keep_unseeded"),
    "objects": ("max_size", "exclude_border"),
    "measure": ("pixel_size_um",),
}

# Tooltips in a biologist's words: what the setting does, and what raising it does.
HELP: dict[str, str] = {
    "channel": "Which channel of a multi-channel image holds the nuclei (0 = first).",
    "z": "Which z-slice to segment, or 'max' for a maximum-intensity projection of the stack.",
    "t": "Which time point to segment (0 = first).",
    "background": (
        "Subtract uneven background before filtering. Rolling ball (as in Fiji) or white "
        "top-hat remove structures larger than the radius: use it when one side of the "
        "field is brighter than the other. Make the radius larger than the largest nucleus. "
        "Rolling ball is slow (about 10 s for a 1344×1024 image); top-hat is faster."
    ),
    "background_radius": (
        "Radius in pixels of the background estimate. Make it larger than the largest "
        "nucleus, or nuclei get hollowed out. Larger = gentler correction, slower."
    ),
    "filter": (
        "Noise-reduction filter applied before thresholding. Gaussian blurs smoothly, "
        "mean averages a square, median removes salt-and-pepper noise and keeps edges."
    ),
    "sigma": (
        "Width (px) of the Gaussian blur. Raising it removes more noise and merges "
        "texture inside nuclei, but blurs edges and can merge touching nuclei."
    ),
    "filter_size": (
        "Side (px) of the square window for the mean or median filter. Larger = smoother "
        "mask, fewer speckles, but small nuclei shrink or vanish."
    ),
    "threshold_method": (
        "How the intensity cutoff is chosen. Automatic methods (Otsu, Li, ...) pick it "
        "from the histogram of each image, so results are reproducible; 'manual' uses "
        "your value; 'local' computes a cutoff for each neighbourhood (uneven background)."
    ),
    "threshold_value": (
        "Cutoff in the image's own intensity units (manual method). Pixels brighter than "
        "this are nuclei. Raising it gives smaller nuclei and loses dim ones."
    ),
    "block_size": (
        "Local threshold: size (px, odd) of the neighbourhood each pixel is compared "
        "with. Make it a few nuclei wide; too small and nuclei become rings."
    ),
    "offset": (
        "Local threshold: subtracted from the neighbourhood mean, in intensity units (as in "
        "scikit-image). Bright nuclei usually need a negative offset (e.g. -5 to -50): the cutoff "
        "is then that much above the local mean, so flat background stays black. Raising it "
        "lowers the cutoff, so more pixels count as nuclei."
    ),
    "objects": "Nuclei brighter than the background (fluorescence) or darker (e.g. brightfield).",
    "min_size": (
        "Blobs of the mask smaller than this many pixels are removed (debris, noise), before "
        "touching nuclei are split, so a split can still leave smaller pieces (see 'max size' "
        "for the other end). Raising it removes more small objects, and small nuclei with them."
    ),
    "max_size": (
        "Objects larger than this many pixels are removed (clumps, artefacts). 0 = keep "
        "all. Applied after splitting."
    ),
    "closing_radius": (
        "Closing with a disk of this radius (px) smooths the outline and closes small "
        "gaps and notches. 0 = off. Larger radii can join neighbouring nuclei."
    ),
    "opening_radius": (
        "Opening with a disk of this radius (px) removes thin protrusions and "
        "breaks thin bridges between nuclei. 0 = off. Larger radii erode small nuclei."
    ),
    "fill_holes": "Fill holes inside nuclei (dim nucleoli, uneven staining).",
    "max_hole_size": "Fill only holes up to this many pixels (0 = fill every hole).",
    "exclude_border": (
        "Remove objects that touch the image border: they are cut off, so their area "
        "and intensity are wrong."
    ),
    "split": (
        "Watershed splits touching nuclei using the distance to the background; 'none' "
        "keeps every connected blob as one object."
    ),
    "seed_method": (
        "How one seed per nucleus is found on the distance map: local maxima "
        "(peak_local_max, as in the course) or h-maxima (more robust for irregular nuclei)."
    ),
    "footprint": (
        "Width (px) of the square window in which a seed must be the highest point. "
        "Raising it gives fewer seeds: fewer splits, more merged nuclei."
    ),
    "min_distance": (
        "Minimum distance (px) between two seeds. Raising it merges nuclei that were "
        "split; lowering it splits more (and may cut single nuclei in two)."
    ),
    "distance_sigma": (
        "Smooth the distance map (Gaussian, px) before finding seeds, so bumpy outlines "
        "don't give extra seeds. 0 = off. Raising it means fewer splits."
    ),
    "h": (
        "h-maxima: a seed must rise at least this many pixels above its surroundings on "
        "the distance map. Raising it means fewer seeds, fewer splits."
    ),
    "keep_unseeded": (
        "Keep objects where no seed was found (often nuclei cut by the border) as one "
        "object each, instead of dropping them as the course recipe does."
    ),
    "pixel_size_um": "Size of one pixel in micrometres. When set, areas and lengths are also given in µm.",
}


@dataclass(frozen=True)
class Params:
    """All settings of the classic nuclei segmentation pipeline.

    Parameters
    ----------
    channel, z, t : int or None
        Plane choice for multi-dimensional files.  ``z`` may be ``"max"`` for a
        maximum projection.  ``None`` is allowed only where the file has a single
        plane along that axis.
    background : {'none', 'rolling_ball', 'tophat'}
        Background subtraction before filtering, with ``background_radius`` px.
    filter : {'none', 'mean', 'gaussian', 'median'}
        Noise filter; Gaussian uses ``sigma`` px, mean and median a square
        footprint of ``filter_size`` px.
    threshold_method : str
        ``'manual'`` (uses ``threshold_value`` in raw units), an automatic method
        (``'otsu'``, ``'li'``, ``'triangle'``, ``'yen'``, ``'isodata'``,
        ``'mean'``, ``'minimum'``) or ``'local'`` (``block_size``, ``offset``).
    objects : {'bright', 'dark'}
        Whether nuclei are brighter or darker than the background.
    min_size : int
        Objects smaller than this (px) are removed.
    closing_radius, opening_radius : int
        Radius (px) of the disk for closing / opening; 0 switches it off.
    fill_holes : bool
        Fill holes, all of them (``max_hole_size=0``) or up to ``max_hole_size`` px.
    split : {'none', 'watershed'}
        Connected components, or watershed of the distance transform.
    seed_method : {'peak_local_max', 'h_maxima'}
        Seeds for the watershed; ``footprint`` and ``min_distance`` (px) for
        ``peak_local_max``, ``h`` (px) for ``h_maxima``.
    distance_sigma : float
        Gaussian smoothing (px) of the distance map; 0 = off.
    keep_unseeded : bool
        Keep objects that received no seed as one object each.
    max_size : int
        Objects larger than this (px) are removed after splitting; 0 = off.
    exclude_border : bool
        Remove objects touching the image border.
    pixel_size_um : float or None
        Pixel size in µm for the measurements in physical units.
    """

    # plane
    channel: int | None = None
    z: int | str | None = None
    t: int | None = None
    # filter
    background: str = "none"
    background_radius: float = 50.0
    filter: str = "gaussian"
    sigma: float = 1.0
    filter_size: int = 3
    # threshold
    threshold_method: str = "otsu"
    threshold_value: float | None = None
    block_size: int = 51
    offset: float = 0.0
    objects: str = "bright"
    # refine
    min_size: int = 10
    closing_radius: int = 1
    opening_radius: int = 0
    fill_holes: bool = False
    max_hole_size: int = 0
    # split
    split: str = "watershed"
    seed_method: str = "peak_local_max"
    footprint: int = 25
    min_distance: int = 10
    distance_sigma: float = 0.0
    h: float = 2.0
    keep_unseeded: bool = False
    max_size: int = 0
    exclude_border: bool = False
    # measure
    pixel_size_um: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f.name, getattr(self, f.name))
        if self.threshold_method == "manual" and self.threshold_value is None:
            raise ValueError(
                "threshold_value must be set (in the image's intensity units) "
                "when threshold_method is 'manual'"
            )

    # -- conversions -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting."""
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """Settings JSON with its schema name and version."""
        doc = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "params": self.to_dict()}
        return json.dumps(doc, indent=indent)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Params:
        """Build from a dict; unknown keys and wrong types raise ``ValueError``."""
        if not isinstance(values, dict):
            raise ValueError("settings must be a JSON object of setting names and values")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(map(repr, unknown))}; "
                f"known settings are: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Params:
        """Read settings written by :meth:`to_json`.

        Raises
        ------
        ValueError
            Not JSON, another schema, a newer version, an unknown key or a
            value of the wrong type or out of range.
        """
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"the settings file is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
            raise ValueError(
                f"this is not a settings file of this app (expected \"schema\": \"{SCHEMA_NAME}\")"
            )
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
            raise ValueError(
                f"settings version {version!r} is not supported (this app reads version "
                f"{SCHEMA_VERSION} and older); update the app"
            )
        if "params" not in doc:
            raise ValueError('the settings file has no "params" section')
        return cls.from_dict(doc["params"])

    def replace(self, **changes: Any) -> Params:
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    def stage(self, name: str) -> tuple[Any, ...]:
        """The values of the fields one stage reads (a cache key)."""
        return tuple(getattr(self, f) for f in STAGE_FIELDS[name])


# --- validation -------------------------------------------------------------

_CHOICES: dict[str, tuple[str, ...]] = {
    "background": BACKGROUNDS,
    "filter": FILTERS,
    "threshold_method": THRESHOLD_METHODS,
    "objects": OBJECTS,
    "split": SPLIT_METHODS,
    "seed_method": SEED_METHODS,
}
# name -> (minimum, maximum) for numbers; None = no bound
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "filter_size": (1, 501),
    "block_size": (3, 100001),
    "min_size": (0, None),
    "closing_radius": (0, 100),
    "opening_radius": (0, 100),
    "max_hole_size": (0, None),
    "footprint": (1, 1001),
    "min_distance": (1, 1000),
    "max_size": (0, None),
}
_FLOAT_RANGES: dict[str, tuple[float, float | None]] = {
    "background_radius": (1.0, 10000.0),
    "sigma": (0.0, 100.0),
    "offset": (-1e12, 1e12),
    "distance_sigma": (0.0, 100.0),
    "h": (0.1, 1000.0),
}
_BOOLS = ("fill_holes", "keep_unseeded", "exclude_border")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and v == v  # not NaN


def _check(name: str, v: Any) -> None:
    if name in _CHOICES:
        if v not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of {', '.join(_CHOICES[name])}; got {v!r}")
    elif name in _INT_RANGES:
        lo, hi = _INT_RANGES[name]
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            rng = f"{lo} to {hi}" if hi is not None else f"{lo} or more"
            raise ValueError(f"{name} must be a whole number from {rng}; got {v!r}")
        if name == "block_size" and v % 2 == 0:
            raise ValueError(f"block_size must be odd; got {v}")
    elif name in _FLOAT_RANGES:
        lo, hi = _FLOAT_RANGES[name]
        if not _is_number(v) or v < lo or (hi is not None and v > hi):
            raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}; got {v!r}")
    elif name in _BOOLS:
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be true or false; got {v!r}")
    elif name in ("channel", "t"):
        if v is not None and (not _is_int(v) or v < 0):
            raise ValueError(f"{name} must be a whole number 0 or more, or empty; got {v!r}")
    elif name == "z":
        if v is not None and v != "max" and (not _is_int(v) or v < 0):
            raise ValueError(f"z must be a slice number 0 or more, 'max', or empty; got {v!r}")
    elif name == "threshold_value":
        if v is not None and (not _is_number(v) or abs(v) == float("inf")):
            raise ValueError(f"threshold_value must be a number or empty; got {v!r}")
    elif name == "pixel_size_um":
        if v is not None and (not _is_number(v) or not 0 < v <= 1e4):
            raise ValueError(f"pixel_size_um must be a number above 0 (µm), or empty; got {v!r}")
    else:  # pragma: no cover - every field has a rule
        raise AssertionError(f"no validation rule for {name}")
