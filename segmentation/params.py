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
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .filters import BACKGROUNDS, FILTERS
from .registry import Method
from .split import SEED_METHODS, SPLIT_METHODS
from .threshold import AUTO_THRESHOLD_METHODS, POLARITIES, THRESHOLD_METHODS

__all__ = [
    "Params",
    "Setting",
    "SETTINGS",
    "FILTERS",
    "BACKGROUNDS",
    "THRESHOLD_METHODS",
    "AUTO_THRESHOLD_METHODS",
    "POLARITIES",
    "SEED_METHODS",
    "SPLIT_METHODS",
    "STAGES",
    "STAGE_FIELDS",
    "HELP",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "MAX_SETTINGS_BYTES",
    "MAX_SETTINGS_DEPTH",
]

SCHEMA_NAME = "nuclei-segmentation-settings"
SCHEMA_VERSION = 1
# A settings file is a few hundred bytes; refuse anything far larger or deeper before parsing it.
MAX_SETTINGS_BYTES = 64 * 1024
MAX_SETTINGS_DEPTH = 8
MAX_CHANNELS = 32  # positive calls: channels, and the length of a channel's name
MAX_CHANNEL_NAME = 60
# the longest value a link may carry for a setting: a number, or every positive call ("name:cutoff;" each)
MAX_QUERY_VALUE = 100
MAX_QUERY_CUTOFFS = MAX_CHANNELS * (MAX_CHANNEL_NAME + 2 + MAX_QUERY_VALUE)

# The pipeline's stages in order; each setting belongs to exactly one.
STAGES = ("plane", "filter", "threshold", "refine", "split", "objects", "measure")


@dataclass(frozen=True)
class Setting:
    """What the app needs to know about one setting, next to its validation.

    Attributes
    ----------
    stage : str
        The pipeline stage that reads it (one of :data:`STAGES`).
    label : str
        Its name in the sidebar, without the unit, e.g. ``"Sigma"``.
    help : str
        The tooltip, in a biologist's words: what it does, what raising it does.
    kind : {'int', 'float', 'bool', 'choice', 'plane', 'z', 'cutoff', 'pixel_size'}
    unit : str
        ``"px"``, ``"px²"``, ``"µm"`` or ``""``.
    low, high : float or None
        Valid values (inclusive); None = unbounded.  Values outside are refused.
    ui : (float, float) or None
        The slider's usual range.  A loaded value outside it (but valid) widens
        the slider instead of being clamped.
    step : float or None
        The slider's step.
    choices : dict of str to Method, optional
        The registry a choice setting takes its values, labels and help from.
    odd : bool
        Only odd whole numbers (block size).
    applies : callable(Params) -> bool, optional
        Whether the setting is used with the other settings as they are (sigma
        only with the Gaussian filter, ...); unused settings are hidden in the
        sidebar, left out of the description and of the Compare cache key.
    """

    stage: str
    label: str
    help: str
    kind: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    ui: tuple[float, float] | None = None
    step: float | None = None
    choices: Mapping[str, Method] | None = None
    odd: bool = False
    applies: Callable[[Any], bool] | None = None

    def check(self, name: str, v: Any) -> None:
        """Raise ``ValueError`` naming the setting when `v` is not a valid value."""
        kind = self.kind
        if kind == "choice":
            assert self.choices is not None
            if not isinstance(v, str) or v not in self.choices:
                raise ValueError(f"{name} must be one of {', '.join(self.choices)}; got {_short(v)}")
        elif kind == "int":
            if not _is_int(v) or not self._inside(v):
                raise ValueError(f"{name} must be a whole number {self._range()}; got {_short(v)}")
            if self.odd and v % 2 == 0:
                raise ValueError(f"{name} must be odd; got {v}")
        elif kind == "float":
            if not _is_number(v) or not self._inside(v):
                raise ValueError(f"{name} must be a number {self._range()}; got {_short(v)}")
        elif kind == "bool":
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be true or false; got {_short(v)}")
        elif kind == "plane":
            if v is not None and (not _is_int(v) or v < 0):
                raise ValueError(f"{name} must be a whole number 0 or more, or empty; got {_short(v)}")
        elif kind == "z":
            if v is not None and v != "max" and (not _is_int(v) or v < 0):
                raise ValueError(f"z must be a slice number 0 or more, 'max', or empty; got {_short(v)}")
        elif kind == "cutoff":
            if v is not None and (not _is_number(v) or abs(v) == math.inf):
                raise ValueError(f"{name} must be a number or empty; got {_short(v)}")
        elif kind == "cutoffs":
            if not isinstance(v, tuple) or not all(isinstance(p, tuple) and len(p) == 2 for p in v):
                raise ValueError(f"{name} must be channel names and cutoffs, like {{\"EdU\": 500}}; got {_short(v)}")
            if len(v) > MAX_CHANNELS:
                raise ValueError(f"{name} takes at most {MAX_CHANNELS} channels; got {len(v)}")
            for channel, cutoff in v:
                if not isinstance(channel, str) or not re.fullmatch(rf"[A-Za-z0-9_]{{1,{MAX_CHANNEL_NAME}}}", channel):
                    raise ValueError(f"{name}: channel names are letters, digits and _ (as in the measurement "
                                     f"columns); got {_short(channel)}")
                if not _is_number(cutoff) or abs(cutoff) == math.inf:
                    raise ValueError(f"{name}: the cutoff of {channel} must be a number; got {_short(cutoff)}")
        elif kind == "pixel_size":
            if v is not None and (not _is_number(v) or not self._inside(v) or v == 0):
                raise ValueError(f"{name} must be a number above 0 and at most {self.high:g} (µm), or empty; "
                                 f"got {_short(v)}")
        else:  # pragma: no cover - every kind has a rule
            raise AssertionError(f"no validation rule for kind {kind!r}")

    def _inside(self, v: float) -> bool:
        return (self.low is None or v >= self.low) and (self.high is None or v <= self.high)

    def _range(self) -> str:
        if self.high is None:
            return f"from {self.low:g} or more"
        return f"from {self.low:g} to {self.high:g}"

    def slider_range(self, value: float | None = None) -> tuple[float, float]:
        """The slider's range: its usual range, widened to hold `value` if needed."""
        assert self.ui is not None
        lo, hi = self.ui
        if value is not None:
            lo, hi = min(lo, value), max(hi, value)
        return lo, hi


def setting(default: Any, stage: str, label: str, help: str, kind: str, **spec: Any) -> Any:
    """A dataclass field of :class:`Params` carrying its :class:`Setting`."""
    return dataclasses.field(default=default, metadata={"setting": Setting(stage, label, help, kind, **spec)})


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and v == v  # not NaN


def _gaussian(p: Any) -> bool:
    return p.filter == "gaussian"


def _window(p: Any) -> bool:
    return p.filter in ("mean", "median")


def _background(p: Any) -> bool:
    return p.background != "none"


def _manual(p: Any) -> bool:
    return p.threshold_method == "manual"


def _local(p: Any) -> bool:
    return p.threshold_method == "local"


def _watershed(p: Any) -> bool:
    return p.split == "watershed"


def _peaks(p: Any) -> bool:
    return p.split == "watershed" and p.seed_method == "peak_local_max"


def _hmaxima(p: Any) -> bool:
    return p.split == "watershed" and p.seed_method == "h_maxima"


def _holes(p: Any) -> bool:
    return p.fill_holes


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
    channel: int | None = setting(
        None, "plane", "Channel", "Which channel of a multi-channel image holds the nuclei (0 = first).", "plane")
    z: int | str | None = setting(
        None, "plane", "Z-slice", "Which z-slice to segment, or 'max' for a maximum-intensity projection of the "
        "stack.", "z")
    t: int | None = setting(None, "plane", "Time point", "Which time point to segment (0 = first).", "plane")
    # filter
    background: str = setting(
        "none", "filter", "Background",
        "Subtract uneven background before filtering. Rolling ball (as in Fiji) or white top-hat remove "
        "structures larger than the radius: use it when one side of the field is brighter than the other. "
        "Make the radius larger than the largest nucleus. Rolling ball is slow on large images; top-hat is faster.",
        "choice", choices=BACKGROUNDS)
    background_radius: float = setting(
        50.0, "filter", "Radius",
        "Radius of the background estimate. Make it larger than the largest nucleus, or nuclei get hollowed "
        "out. Larger = gentler correction, slower.",
        "float", unit="px", low=1.0, high=250.0, ui=(5.0, 200.0), step=1.0, applies=_background)
    filter: str = setting(
        "gaussian", "filter", "Filter",
        "Noise-reduction filter applied before thresholding. Gaussian blurs smoothly, mean averages a square, "
        "median removes salt-and-pepper noise and keeps edges.", "choice", choices=FILTERS)
    sigma: float = setting(
        1.0, "filter", "Sigma",
        "Width of the Gaussian blur. Raising it removes more noise and merges texture inside nuclei, but blurs "
        "edges and can merge touching nuclei.",
        "float", unit="px", low=0.0, high=50.0, ui=(0.0, 10.0), step=0.1, applies=_gaussian)
    filter_size: int = setting(
        3, "filter", "Kernel size",
        "Side of the square window for the mean or median filter. Larger = smoother mask, fewer speckles, but "
        "small nuclei shrink or vanish.",
        "int", unit="px", low=1, high=101, ui=(1, 31), step=1, applies=_window)
    # threshold
    threshold_method: str = setting(
        "otsu", "threshold", "Method",
        "How the intensity cutoff is chosen. Automatic methods (Otsu, Li, ...) pick it from the histogram of "
        "each image, so results are reproducible; 'manual' uses your value; 'local' computes a cutoff for each "
        "neighbourhood (uneven background).", "choice", choices=THRESHOLD_METHODS)
    threshold_value: float | None = setting(
        None, "threshold", "Cutoff",
        "Cutoff in the image's own intensity units (manual method). Pixels brighter than this are nuclei. "
        "Raising it gives smaller nuclei and loses dim ones.", "cutoff", applies=_manual)
    block_size: int = setting(
        51, "threshold", "Block size",
        "Local threshold: size (odd) of the neighbourhood each pixel is compared with. Make it a few nuclei "
        "wide; too small and nuclei become rings.",
        "int", unit="px", low=3, high=4001, ui=(3, 301), step=2, odd=True, applies=_local)
    offset: float = setting(
        0.0, "threshold", "Offset",
        "Local threshold: subtracted from the neighbourhood mean, in intensity units (as in scikit-image). "
        "Bright nuclei usually need a negative offset (e.g. -5 to -50): the cutoff is then that much above the "
        "local mean, so flat background stays black. Raising it lowers the cutoff, so more pixels count as "
        "nuclei.", "float", low=-1e12, high=1e12, applies=_local)
    objects: str = setting(
        "bright", "threshold", "Nuclei are",
        "Nuclei brighter than the background (fluorescence) or darker (e.g. brightfield).",
        "choice", choices=POLARITIES)
    # refine
    min_size: int = setting(
        10, "refine", "Remove objects smaller than",
        "Blobs of the mask smaller than this many pixels are removed (debris, noise), before touching nuclei "
        "are split, so a split can still leave smaller pieces (see 'max size' for the other end). Raising it "
        "removes more small objects, and small nuclei with them.",
        "int", unit="px", low=0, high=10**9, ui=(0, 2000), step=1)
    closing_radius: int = setting(
        1, "refine", "Closing radius",
        "Closing with a disk of this radius smooths the outline and closes small gaps and notches. 0 = off. "
        "Larger radii can join neighbouring nuclei.",
        "int", unit="px", low=0, high=50, ui=(0, 10), step=1)
    opening_radius: int = setting(
        0, "refine", "Opening radius",
        "Opening with a disk of this radius removes thin protrusions and breaks thin bridges between nuclei. "
        "0 = off. Larger radii erode small nuclei.",
        "int", unit="px", low=0, high=50, ui=(0, 10), step=1)
    fill_holes: bool = setting(
        False, "refine", "Fill holes", "Fill holes inside nuclei (dim nucleoli, uneven staining).", "bool")
    max_hole_size: int = setting(
        0, "refine", "Largest hole to fill", "Fill only holes up to this many pixels (0 = fill every hole).",
        "int", unit="px", low=0, high=10**9, applies=_holes)
    # split
    split: str = setting(
        "watershed", "split", "Method",
        "Watershed splits touching nuclei using the distance to the background; 'none' keeps every connected "
        "blob as one object.", "choice", choices=SPLIT_METHODS)
    seed_method: str = setting(
        "peak_local_max", "split", "Seeds",
        "How one seed per nucleus is found on the distance map: local maxima (peak_local_max, as in the course) "
        "or h-maxima (more robust for irregular nuclei).", "choice", choices=SEED_METHODS, applies=_watershed)
    footprint: int = setting(
        25, "split", "Footprint",
        "Width of the square window in which a seed must be the highest point. Raising it gives fewer seeds: "
        "fewer splits, more merged nuclei.",
        "int", unit="px", low=1, high=301, ui=(1, 101), step=1, applies=_peaks)
    min_distance: int = setting(
        10, "split", "min_distance",
        "Minimum distance between two seeds. Raising it merges nuclei that were split; lowering it splits more "
        "(and may cut single nuclei in two).",
        "int", unit="px", low=1, high=300, ui=(1, 100), step=1, applies=_peaks)
    distance_sigma: float = setting(
        0.0, "split", "Smooth distance map",
        "Smooth the distance map (Gaussian) before finding seeds, so bumpy outlines don't give extra seeds. "
        "0 = off. Raising it means fewer splits.",
        "float", unit="px", low=0.0, high=50.0, ui=(0.0, 10.0), step=0.5, applies=_watershed)
    h: float = setting(
        2.0, "split", "h",
        "h-maxima: a seed must rise at least this many pixels above its surroundings on the distance map. "
        "Raising it means fewer seeds, fewer splits.",
        "float", unit="px", low=0.1, high=100.0, ui=(0.1, 20.0), step=0.1, applies=_hmaxima)
    keep_unseeded: bool = setting(
        False, "split", "Keep objects without a seed",
        "Keep objects where no seed was found (often nuclei cut by the border) as one object each, instead of "
        "dropping them as the course recipe does.", "bool", applies=_watershed)
    # objects
    max_size: int = setting(
        0, "objects", "Remove objects larger than",
        "Objects larger than this many pixels are removed (clumps, artefacts). 0 = keep all. Applied after "
        "splitting.", "int", unit="px", low=0, high=10**9)
    exclude_border: bool = setting(
        False, "objects", "Remove objects touching the border",
        "Remove objects that touch the image border: they are cut off, so their area and intensity are wrong.",
        "bool")
    # measure
    pixel_size_um: float | None = setting(
        None, "measure", "Pixel size",
        "Size of one pixel in micrometres. When set, areas and lengths are also given in µm.",
        "pixel_size", unit="µm", low=0.0, high=1e4)
    ring_width: int = setting(
        0, "measure", "Cytoplasm ring",
        "Other channels are also measured in a ring this many pixels wide around each nucleus (as CellProfiler's "
        "'expand objects'), for stains outside the nucleus. 0 = off.",
        "int", unit="px", low=0, high=50, ui=(0, 20), step=1)
    positive: tuple[tuple[str, float], ...] = setting(
        (), "measure", "Positive above",
        "For each other channel, the cutoff on a nucleus's mean intensity (in that channel's units) above which "
        "the nucleus counts as positive (e.g. EdU+). Gives a '<channel>_positive' column and the % positive.",
        "cutoffs")

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive", _cutoff_pairs(self.positive))
        for name, spec in SETTINGS.items():
            spec.check(name, getattr(self, name))
        if self.threshold_method == "manual" and self.threshold_value is None:
            raise ValueError(
                "threshold_value must be set (in the image's intensity units) "
                "when threshold_method is 'manual'"
            )

    # -- conversions -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting (the positive cutoffs as ``{channel: cutoff}``)."""
        values = dataclasses.asdict(self)
        values["positive"] = dict(self.positive)
        return values

    def to_json(self, indent: int | None = 2) -> str:
        """Settings JSON with its schema name and version."""
        doc = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "params": self.to_dict()}
        return json.dumps(doc, indent=indent)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Params:
        """Build from a dict; unknown keys and wrong types raise ``ValueError``."""
        if not isinstance(values, dict):
            raise ValueError("settings must be a JSON object of setting names and values")
        unknown = [k for k in values if k not in SETTINGS]
        if unknown:
            shown = ", ".join(_short(k) for k in unknown[:5])
            more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
            raise ValueError(f"unknown setting(s) {shown}{more}; known settings are: {', '.join(SETTINGS)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Params:
        """Read settings written by :meth:`to_json`.

        Raises
        ------
        ValueError
            Larger than :data:`MAX_SETTINGS_BYTES` or nested deeper than
            :data:`MAX_SETTINGS_DEPTH`, not JSON, another schema, a newer
            version, an unknown key or a value of the wrong type or out of range.
        """
        if len(text) > MAX_SETTINGS_BYTES:
            raise ValueError(
                f"the file is {len(text) / 1e6:.3g} MB; a settings file of this app is a few hundred "
                f"bytes (at most {MAX_SETTINGS_BYTES // 1024} kB): is it the right file?"
            )
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"the settings file is not valid JSON ({str(exc)[:100]})") from exc
        except RecursionError as exc:
            raise ValueError("the settings file is nested far too deeply to be a settings file") from exc
        if _depth(doc) > MAX_SETTINGS_DEPTH:
            raise ValueError("the settings file is nested far too deeply to be a settings file")
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
            raise ValueError(
                f"this is not a settings file of this app (expected \"schema\": \"{SCHEMA_NAME}\")"
            )
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
            raise ValueError(
                f"settings version {_short(version)} is not supported (this app reads version "
                f"{SCHEMA_VERSION} and older); update the app"
            )
        if "params" not in doc:
            raise ValueError('the settings file has no "params" section')
        return cls.from_dict(doc["params"])

    def replace(self, **changes: Any) -> Params:
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    # -- in a link --------------------------------------------------------------
    def to_query(self) -> dict[str, str]:
        """The settings that differ from the defaults, as text for a URL's query string.

        >>> Params(sigma=2.5, fill_holes=True, pixel_size_um=0.65).to_query()
        {'sigma': '2.5', 'fill_holes': 'true', 'pixel_size_um': '0.65'}
        """
        out = {}
        for name, f in _FIELDS.items():
            value = getattr(self, name)
            if value != f.default:
                if name == "positive":
                    out[name] = ";".join(f"{channel}:{cutoff!r}" for channel, cutoff in value)
                    continue
                out[name] = "" if value is None else "true" if value is True else "false" if value is False else (
                    repr(value) if isinstance(value, float) else str(value))
        return out

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> tuple[Params, list[str]]:
        """Settings from a URL's query string (:meth:`to_query`); other keys are ignored.

        Returns the settings and what could not be used (a value that does not
        fit its setting keeps the default, and is named): a link typed or cut
        by hand never stops the page.

        >>> params, problems = Params.from_query({"sigma": "2.5", "min_size": "lots", "page": "x"})
        >>> params.sigma, params.min_size, problems
        (2.5, 10, ["min_size: 'lots' is not a whole number"])
        """
        values: dict[str, Any] = {}
        problems = []
        for name, text in query.items():
            if name not in SETTINGS:
                continue
            try:
                value = _from_text(SETTINGS[name], str(text))
                SETTINGS[name].check(name, value)
                values[name] = value
            except ValueError as exc:
                problems.append(f"{name}: {str(exc).split('; got')[0].removeprefix(name + ' ')}"
                                if "; got" in str(exc) else f"{name}: {exc}")
        try:
            return cls(**values), problems
        except ValueError as exc:  # e.g. a manual threshold without its cutoff
            values.pop("threshold_method", None)
            return cls(**values), [*problems, str(exc)]

    # -- what the stages read ------------------------------------------------
    def stage(self, name: str) -> tuple[Any, ...]:
        """The values of the settings one stage reads (a cache key); None for those not in use.

        >>> Params(filter="median").stage("filter")  # sigma is not used by the median
        ('none', None, 'median', None, 3)
        """
        return tuple(getattr(self, f) if self.uses(f) else None for f in STAGE_FIELDS[name])

    def only(self, *stages: str) -> StageView:
        """These settings, readable only for the fields of `stages`.

        The stage runner hands each stage such a view, so that a stage that
        starts reading a setting outside its cache key fails loudly instead of
        reusing a stale result.

        >>> Params().only("filter").sigma
        1.0
        >>> Params().only("filter").min_size
        Traceback (most recent call last):
        ...
        AttributeError: the filter stage reads min_size, which is not one of its settings (STAGE_FIELDS)
        """
        return StageView(self, stages)

    def uses(self, name: str) -> bool:
        """Whether setting `name` is used with the other settings as they are (e.g. sigma only for Gaussian)."""
        applies = SETTINGS[name].applies
        return applies is None or bool(applies(self))

    # -- in words --------------------------------------------------------------
    def describe(self) -> list[str]:
        """The settings in words, one line per step: every setting in use, switches when on.

        >>> Params().describe()  # doctest: +NORMALIZE_WHITESPACE
        ['Filter: Gaussian, sigma 1 px',
         'Threshold: Otsu, brighter than background',
         'Refine: remove objects smaller than 10 px, closing radius 1 px',
         'Split: watershed (split touching nuclei), seeds local maxima (course), footprint 25 px,
          min_distance 10 px']
        """
        default = Params.__new__(Params)  # the defaults, without validation
        for name, f in _FIELDS.items():
            object.__setattr__(default, name, f.default)
        lines = []
        for stage in STAGES:
            words = [w for name in STAGE_FIELDS[stage] if self.uses(name)
                     for w in [_in_words(name, getattr(self, name), getattr(default, name))] if w]
            if words:
                lines.append(f"{STAGE_TITLES[stage]}: {', '.join(words)}")
        return lines


class StageView:
    """Read-only access to the settings of some stages (see :meth:`Params.only`)."""

    __slots__ = ("_params", "_stages", "_fields")

    def __init__(self, params: Params, stages: tuple[str, ...]):
        self._params = params
        self._stages = stages
        self._fields = frozenset(f for s in stages for f in STAGE_FIELDS[s])

    def __getattr__(self, name: str) -> Any:
        if name in self._fields:
            return getattr(self._params, name)
        if name in SETTINGS:
            raise AttributeError(f"the {' and '.join(self._stages)} stage reads {name}, which is not one of its "
                                 "settings (STAGE_FIELDS)")
        raise AttributeError(name)

    def uses(self, name: str) -> bool:
        return self._params.uses(name)


# --- derived from the fields: one place per fact -------------------------------------

_FIELDS = {f.name: f for f in fields(Params)}
SETTINGS: dict[str, Setting] = {name: f.metadata["setting"] for name, f in _FIELDS.items()}
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    stage: tuple(n for n, spec in SETTINGS.items() if spec.stage == stage) for stage in STAGES
}
HELP: dict[str, str] = {name: spec.help for name, spec in SETTINGS.items()}
STAGE_TITLES = {"plane": "Plane", "filter": "Filter", "threshold": "Threshold", "refine": "Refine",
                "split": "Split", "objects": "Objects", "measure": "Measure"}


def _in_words(name: str, value: Any, default: Any) -> str:
    """One setting in words for :meth:`Params.describe` ('' when there is nothing to say)."""
    spec = SETTINGS[name]
    if value is None:
        return ""
    if spec.kind == "choice":
        assert spec.choices is not None
        label = spec.choices[value].label
        if value == "none":
            return "" if name == "background" else "off"
        if name == "background":
            return f"{label.lower()} background"
        prefix = "seeds " if name == "seed_method" else ""
        return prefix + (label if name in ("filter", "threshold_method") else label[:1].lower() + label[1:])
    if spec.kind == "bool":
        return spec.label[:1].lower() + spec.label[1:] if value else ""
    if spec.kind == "z":
        return "maximum projection" if value == "max" else f"z-slice {value}"
    if spec.kind == "cutoffs":
        return "; ".join(f"{channel} positive above {cutoff:g}" for channel, cutoff in value)
    if value == 0 and default == 0 and name != "offset":  # 0 = off, as by default
        return ""
    label = spec.label if spec.label[:1].islower() or name == "min_distance" else spec.label[:1].lower() + spec.label[1:]
    unit = f" {spec.unit}" if spec.unit else ""
    return f"{label} {value:g}{unit}"


def _from_text(spec: Setting, text: str) -> Any:
    """A setting's value from its text in a URL (see :meth:`Params.to_query`)."""
    kind = spec.kind
    longest = MAX_QUERY_CUTOFFS if kind == "cutoffs" else MAX_QUERY_VALUE
    if len(text) > longest:  # never cut it: a shorter text may be another valid value
        raise ValueError(f"longer than {longest} characters")
    if kind in ("choice",):
        return text
    if kind == "cutoffs":
        pairs = []
        for part in filter(None, text.split(";")):
            channel, _, cutoff = part.partition(":")
            try:
                pairs.append((channel, float(cutoff)))
            except ValueError:
                raise ValueError(f"{part!r} is not channel:cutoff") from None
        return tuple(pairs)
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text == "true"
    if text == "" and kind in ("plane", "z", "cutoff", "pixel_size"):
        return None
    if kind == "z" and text == "max":
        return "max"
    try:
        return int(text) if kind in ("int", "plane", "z") else float(text)
    except ValueError:
        what = "a whole number" if kind in ("int", "plane", "z") else "a number"
        raise ValueError(f"{text!r} is not {what}") from None


def _cutoff_pairs(value: Any) -> Any:
    """``{channel: cutoff}`` or pairs, as sorted ``(channel, cutoff)`` pairs (hashable); anything else as it is."""
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        pairs = [(c, float(v) if _is_number(v) else v) for c, v in value]
        return tuple(sorted(pairs, key=lambda p: str(p[0])))
    return value


def _depth(doc: Any, level: int = 1) -> int:
    if level > MAX_SETTINGS_DEPTH:
        return level
    if isinstance(doc, dict):
        return max([_depth(v, level + 1) for v in doc.values()], default=level)
    if isinstance(doc, list):
        return max([_depth(v, level + 1) for v in doc], default=level)
    return level
