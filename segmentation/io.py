"""Read microscope images into numpy arrays and pick the 2-D plane to segment.

Every supported file is normalised to a 5-D array with axes ``"TCZYX"``
(time, channel, z, y, x), keeping the dtype it was stored with: no rescaling
ever happens here.  :func:`select_plane` then reduces that array to one 2-D
plane by an explicit choice of channel, z-slice (or maximum projection) and
time point, and :func:`validate_plane` rejects planes on which segmentation
would be meaningless.

Anything that goes wrong while reading raises :class:`ImageReadError` whose
message names the file, says what is wrong and what to do about it.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageInfo",
    "ImageReadError",
    "is_image_name",
    "list_image_files",
    "load_plane",
    "read_image",
    "select_plane",
    "validate_plane",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_AXES = "TCZYX"
_TIFF_SUFFIXES = (".tif", ".tiff")
_PNG_SUFFIXES = (".png",)
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_SUPPORTED = "TIFF (.tif, .tiff), PNG (.png) and JPEG (.jpg, .jpeg)"
_SAVE_AS_TIFF = "Open it in Fiji and save it as TIFF (File > Save As > Tiff...)."
_DAMAGED_TODO = (
    "It was probably not copied or uploaded completely: copy it again from the "
    "original, or export it again from the acquisition software."
)
_DEFAULT_UPLOAD_NAME = "uploaded image"

# A pixel size derived from inch/cm resolution tags is only believed inside
# this range: those tags usually hold a screen or print DPI (72 dpi would give
# 353 µm/px), not a microscope calibration.
_PLAUSIBLE_UM = (0.01, 100.0)

# Length units as they appear in ImageJ and OME metadata, in micrometres.
_UNIT_TO_UM = {
    "micron": 1.0,
    "microns": 1.0,
    "µm": 1.0,  # micro sign U+00B5
    "μm": 1.0,  # Greek mu U+03BC
    "um": 1.0,
    "\\u00b5m": 1.0,  # ImageJ sometimes stores the escape sequence literally
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "å": 1e-4,
    "angstrom": 1e-4,
    "pm": 1e-6,
}


class ImageReadError(Exception):
    """A file cannot be turned into a 2-D image.

    The message is written for the person using the app: it names the file,
    says what is wrong and what to do about it.
    """


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`read_image` found in a file.

    Attributes
    ----------
    name : str
        File name as given (used in every message).
    shape : tuple of int
        Shape of the normalised 5-D array returned by :func:`read_image`.
    axes : str
        Always ``"TCZYX"``, the axes of the normalised array.
    dtype : str
        Pixel type as stored in the file, e.g. ``"uint16"``.
    n_t, n_c, n_z : int
        Number of time points, channels and z-slices.
    height, width : int
        Size of one plane in pixels.
    pixel_size_um : float or None
        Micrometres per pixel along X, ``None`` when the file does not say.
    original_axes : str
        Axes as the file stored them (tifffile series axes such as
        ``"ZCYX"``, ``"YXS"``; ``"YX"``/``"YXS"`` for PNG and JPEG).
    is_rgb : bool
        True when the channels are the red, green and blue of a colour image.
        A colour file whose three channels are identical is read as one grey
        channel and has ``is_rgb=False``.
    """

    name: str
    shape: tuple[int, ...]
    axes: str
    dtype: str
    n_t: int
    n_c: int
    n_z: int
    height: int
    width: int
    pixel_size_um: float | None
    original_axes: str
    is_rgb: bool

    def describe(self) -> str:
        """Return a one-line summary for people.

        Plane size is given as width×height, as Fiji does.

        Returns
        -------
        str
            E.g. ``"2 channels × 5 z-slices of 512×512, uint16, 0.65 µm/px"``.
        """
        parts = []
        if self.n_t > 1:
            parts.append(_count(self.n_t, "time point"))
        if self.is_rgb:
            parts.append(f"RGB ({self.n_c} channels)")
        elif self.n_c > 1:
            parts.append(_count(self.n_c, "channel"))
        if self.n_z > 1:
            parts.append(_count(self.n_z, "z-slice"))
        size = f"{self.width}×{self.height}"
        head = f"{' × '.join(parts)} of {size}" if parts else f"{size} image"
        if self.pixel_size_um is None:
            scale = "pixel size unknown"
        else:
            scale = f"{self.pixel_size_um:.4g} µm/px"
        return f"{head}, {self.dtype}, {scale}"


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def is_image_name(name: str) -> bool:
    """Return True if `name` ends in one of :data:`IMAGE_SUFFIXES`.

    Parameters
    ----------
    name : str
        File name or path; the suffix is compared case-insensitively.

    Returns
    -------
    bool
    """
    return Path(str(name)).suffix.lower() in IMAGE_SUFFIXES


def list_image_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a sorted list of image files.

    Parameters
    ----------
    paths : iterable of str or path-like
        Files are kept as given, whatever their suffix (reading them will say
        what is wrong).  Folders are searched recursively for files ending in
        one of :data:`IMAGE_SUFFIXES`, ignoring case.  Hidden files and
        folders (name starting with ``"."``) inside a folder are skipped.

    Returns
    -------
    list of pathlib.Path
        Sorted, without duplicates.
    """
    found: dict[str, Path] = {}
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                # Hidden entries include the "._name.tif" AppleDouble files
                # macOS leaves on USB drives: they are not images.
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for file in files:
                    if not file.startswith(".") and is_image_name(file):
                        candidate = Path(root) / file
                        found.setdefault(_dedup_key(candidate), candidate)
        else:
            found.setdefault(_dedup_key(path), path)
    return sorted(found.values())


def read_image(
    source: str | os.PathLike | bytes, name: str | None = None
) -> tuple[np.ndarray, ImageInfo]:
    """Read a TIFF, PNG or JPEG file into a 5-D ``TCZYX`` array.

    Parameters
    ----------
    source : str, path-like or bytes
        Path of the file, or its raw content (uploads arrive as bytes).
    name : str, optional
        File name used in messages and in the returned info.  Defaults to the
        path's file name, or ``"uploaded image"`` for bytes.  Its suffix is
        checked against :data:`IMAGE_SUFFIXES`.

    Returns
    -------
    data : ndarray
        5-D array with axes ``"TCZYX"`` and the dtype stored in the file.
    info : ImageInfo
        Shape, axes, dtype and pixel size of `data`.

    Raises
    ------
    ImageReadError
        If the file is missing, empty, not a supported format, truncated,
        damaged, or uses a compression that cannot be decoded.

    Notes
    -----
    TIFF covers 8/16/32-bit integer and floating point data, multi-page
    files, ImageJ hyperstacks, OME-TIFF, RGB and LZW/deflate/zstd compression
    (through ``imagecodecs``).  Pages of a plain multi-page TIFF are read as
    z-slices, as Fiji does.  The pixel size comes from OME metadata, ImageJ
    calibration or the TIFF resolution tags, in that order.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        content: bytes | None = bytes(source)
        path = None
        name = name or _DEFAULT_UPLOAD_NAME
        size = len(content)
        header = content[:16]
    elif isinstance(source, (str, os.PathLike)):
        content = None
        path = Path(source)
        name = name or path.name or str(path)
        size, header = _probe_file(path, name)
    else:
        raise TypeError(
            f"source must be a path or bytes, not {type(source).__name__}"
        )

    suffix = Path(name).suffix.lower()
    if suffix and suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"Cannot read '{name}': files ending in '{suffix}' are not supported. "
            f"Supported formats are {_SUPPORTED}. {_SAVE_AS_TIFF}"
        )
    if size == 0:
        raise ImageReadError(
            f"Cannot read '{name}': the file is empty (0 bytes): the upload or "
            "copy may have failed. Copy or upload the file again."
        )

    kind = _sniff(header)
    if kind is None:
        raise ImageReadError(_not_this_format(name, suffix))

    stream: Any = path if content is None else io.BytesIO(content)
    if kind == "tiff":
        data, original_axes, is_rgb, pixel_size = _read_tiff(stream, name)
    else:
        data, original_axes, is_rgb, pixel_size = _read_pillow(stream, name)

    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if is_rgb and _channels_identical(data):
        data = data[:, :1]
        is_rgb = False

    n_t, n_c, n_z, height, width = data.shape
    info = ImageInfo(
        name=name,
        shape=tuple(int(s) for s in data.shape),
        axes=_AXES,
        dtype=data.dtype.name,
        n_t=int(n_t),
        n_c=int(n_c),
        n_z=int(n_z),
        height=int(height),
        width=int(width),
        pixel_size_um=pixel_size,
        original_axes=original_axes,
        is_rgb=is_rgb,
    )
    return data, info


def select_plane(
    data: np.ndarray,
    info: ImageInfo,
    channel: int | None = None,
    z: int | str | None = None,
    t: int | None = None,
) -> np.ndarray:
    """Reduce ``TCZYX`` data to one 2-D plane by an explicit choice.

    Parameters
    ----------
    data : ndarray
        5-D array as returned by :func:`read_image`.
    info : ImageInfo
        Its info (the name is used in messages).
    channel : int, optional
        Channel index; required when the file holds more than one channel.
    z : int or "max", optional
        Z-slice index, or ``"max"`` for a maximum intensity projection over
        all z-slices; required when the file holds more than one z-slice.
    t : int, optional
        Time point index; required when the file holds more than one.

    Returns
    -------
    plane : ndarray
        2-D ``(Y, X)`` array with the original dtype (a view, or a new array
        for a maximum projection).

    Raises
    ------
    ImageReadError
        If a required choice is missing or an index does not exist.

    Notes
    -----
    Dimensions of size 1 need no choice; index 0 is accepted for them.
    """
    if data.ndim != 5:
        raise ValueError(
            f"data must have 5 dimensions (TCZYX), got shape {data.shape}"
        )
    n_t, n_c, n_z = data.shape[:3]
    z_max = _is_max(z)
    if isinstance(z, str) and not z_max:
        raise ImageReadError(
            f"'{info.name}': z must be a z-slice number or 'max' for a maximum "
            f"projection, not '{z}'."
        )

    missing = []
    if n_t > 1 and t is None:
        missing.append(f"a time point (0–{n_t - 1})")
    if n_c > 1 and channel is None:
        missing.append(f"a channel (0–{n_c - 1})")
    if n_z > 1 and z is None:
        missing.append(f"a z-slice (0–{n_z - 1}) or a maximum projection")
    if missing:
        raise ImageReadError(
            f"'{info.name}' holds {_holds(n_t, n_c, n_z)}: "
            f"choose {_join(missing)}."
        )

    ti = _check_index(t, n_t, "time point", info.name)
    ci = _check_index(channel, n_c, "channel", info.name)
    if z_max:
        return data[ti, ci].max(axis=0)
    zi = _check_index(z, n_z, "z-slice", info.name)
    return data[ti, ci, zi]


def validate_plane(plane: np.ndarray, name: str) -> np.ndarray:
    """Reject a 2-D plane on which segmentation would be meaningless.

    Parameters
    ----------
    plane : ndarray
        2-D image.
    name : str
        File name used in messages.

    Returns
    -------
    plane : ndarray
        The input, unchanged.

    Raises
    ------
    ImageReadError
        If the plane is not 2-D, smaller than 2 pixels along an axis, of
        boolean, complex or non-numeric type, contains NaN or infinite
        values, or has the same value in every pixel.
    """
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ImageReadError(
            f"'{name}': expected a single 2-D image plane, got an array with "
            f"{plane.ndim} dimensions {plane.shape}."
        )
    kind = plane.dtype.kind
    if kind == "b":
        raise ImageReadError(
            f"'{name}' is a black-and-white (1-bit) mask, not an intensity "
            "image: there is nothing to threshold. Use the original "
            "fluorescence image instead."
        )
    if kind == "c":
        raise ImageReadError(
            f"'{name}' holds complex numbers (e.g. a Fourier transform), not "
            "pixel intensities. Use the original fluorescence image instead."
        )
    if kind not in "uif":
        raise ImageReadError(
            f"'{name}' holds {plane.dtype} values, not pixel intensities."
        )
    height, width = plane.shape
    if height < 2 or width < 2:
        raise ImageReadError(
            f"'{name}' is only {width}×{height} pixels: an image needs at "
            "least 2 pixels in each direction to be segmented."
        )
    if kind == "f":
        n_nan = int(np.count_nonzero(np.isnan(plane)))
        if n_nan:
            raise ImageReadError(
                f"'{name}' contains NaN (not-a-number) pixels ({n_nan} of "
                f"{plane.size}), which cannot be thresholded. Export it again "
                "without NaN, or replace them in Fiji (Process > Math > "
                "Remove NaNs)."
            )
        n_inf = int(np.count_nonzero(np.isinf(plane)))
        if n_inf:
            raise ImageReadError(
                f"'{name}' contains infinite pixel values ({n_inf} of "
                f"{plane.size}), which cannot be thresholded. Export it again "
                "without them, e.g. avoid dividing by zero when it is computed."
            )
    low, high = plane.min(), plane.max()
    if low == high:
        raise ImageReadError(
            f"'{name}': every pixel has the value {_format_value(low)}: there "
            "is nothing to segment. Check that you chose the right channel "
            "and z-slice, and that the image was exported correctly."
        )
    return plane


def load_plane(
    source: str | os.PathLike | bytes,
    name: str | None = None,
    channel: int | None = None,
    z: int | str | None = None,
    t: int | None = None,
) -> tuple[np.ndarray, ImageInfo]:
    """Read a file and return the validated 2-D plane to segment.

    Runs :func:`read_image`, :func:`select_plane` and :func:`validate_plane`.

    Parameters
    ----------
    source : str, path-like or bytes
        Path of the file or its raw content.
    name : str, optional
        File name used in messages (see :func:`read_image`).
    channel, z, t : optional
        Plane choice, see :func:`select_plane`.

    Returns
    -------
    plane : ndarray
        2-D ``(Y, X)`` array with the dtype stored in the file.
    info : ImageInfo
        Description of the whole file.

    Raises
    ------
    ImageReadError
        If the file cannot be read, the choice is missing or invalid, or the
        plane cannot be segmented.
    """
    data, info = read_image(source, name)
    plane = select_plane(data, info, channel=channel, z=z, t=t)
    return validate_plane(plane, info.name), info


# --------------------------------------------------------------------------
# File access and format detection
# --------------------------------------------------------------------------


def _dedup_key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())


def _probe_file(path: Path, name: str) -> tuple[int, bytes]:
    """Return the size and first bytes of the file at `path`."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(16)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError as exc:
        raise ImageReadError(
            f"Cannot read '{name}': the file does not exist ({path}). Check "
            "the name and folder."
        ) from exc
    except IsADirectoryError as exc:
        raise ImageReadError(
            f"Cannot read '{name}': this is a folder, not an image file."
        ) from exc
    except PermissionError as exc:
        raise ImageReadError(
            f"Cannot read '{name}': you do not have permission to read this "
            "file. Copy it to a folder of yours, or ask for read access."
        ) from exc
    except OSError as exc:
        raise ImageReadError(
            f"Cannot read '{name}': the file could not be opened ({exc})."
        ) from exc
    return size, header


def _sniff(header: bytes) -> str | None:
    """Return "tiff", "png" or "jpeg" from the first bytes, or None."""
    if header[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if header[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if header[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def _not_this_format(name: str, suffix: str) -> str:
    if suffix in _TIFF_SUFFIXES:
        what = "this is not a TIFF image (it does not start with a TIFF header)"
    elif suffix in _PNG_SUFFIXES:
        what = "this is not a PNG image (it does not start with a PNG header)"
    elif suffix in _JPEG_SUFFIXES:
        what = "this is not a JPEG image (it does not start with a JPEG header)"
    else:
        what = f"this is not an image in a supported format ({_SUPPORTED})"
    return (
        f"Cannot read '{name}': {what}. It may be another kind of file that "
        f"was renamed, or was saved incompletely. {_SAVE_AS_TIFF}"
    )


def _damaged(name: str, exc: BaseException | str) -> ImageReadError:
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return ImageReadError(
        f"Cannot read '{name}': the file is truncated or damaged. "
        f"{_DAMAGED_TODO} (Technical detail: {str(detail)[:200]})"
    )


# --------------------------------------------------------------------------
# TIFF
# --------------------------------------------------------------------------

# tifffile reports a broken chain of pages (the usual sign of a truncated
# multi-page, ImageJ or OME file) only in its log and then quietly returns
# the pages it could reach; these messages turn that into an error.
_TIFF_DAMAGE_LOGS = (
    "page offset",
    "offset to page",
    "corrupted tag list",
    "corrupted file",
)


class _TiffDamageLog(logging.Handler):
    """Collect tifffile log errors raised by the current thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            message = record.getMessage()
            if any(key in message for key in _TIFF_DAMAGE_LOGS):
                self.messages.append(message)


def _read_tiff(
    stream: Any, name: str
) -> tuple[np.ndarray, str, bool, float | None]:
    log = logging.getLogger("tifffile")
    damage = _TiffDamageLog()
    log.addHandler(damage)
    try:
        with tifffile.TiffFile(stream) as tif:
            if not tif.series:
                raise ImageReadError(
                    f"Cannot read '{name}': the TIFF file contains no image. "
                    f"{_SAVE_AS_TIFF}"
                )
            series = tif.series[0]
            keyframe = series.keyframe
            _check_codec(keyframe, name)
            raw = series.asarray()
            original_axes = str(series.axes)
            same = _same_shaped_series(tif)
            if len(same) > 1:
                # Pages written one by one with tifffile each become their own
                # series; Fiji opens such a file as one stack, so do we.
                for other in same[1:]:
                    _check_codec(other.keyframe, name)
                raw = np.stack([raw] + [s.asarray() for s in same[1:]])
                original_axes = "I" + original_axes
            photometric = int(keyframe.photometric)
            pixel_size = _tiff_pixel_size(tif)
    except ImageReadError:
        raise
    except KeyError as exc:
        detail = str(exc.args[0]) if exc.args else ""
        # tifffile signals unsupported compressions and predictors this way
        if re.search("COMPRESSION|PREDICTOR|imagecodecs", detail):
            raise _codec_error(name, detail) from exc
        raise _damaged(name, exc) from exc
    except Exception as exc:
        raise _damaged(name, exc) from exc
    finally:
        log.removeHandler(damage)
    if damage.messages:
        raise _damaged(name, damage.messages[0])

    if raw.ndim != len(original_axes):
        raise _damaged(name, f"shape {raw.shape} does not fit axes {original_axes}")
    is_rgb = False
    if "S" in original_axes:
        s_axis = original_axes.index("S")
        n_samples = raw.shape[s_axis]
        # photometric 2 = RGB, 6 = YCbCr (decoded to RGB by tifffile)
        if photometric in (2, 6) and n_samples in (3, 4):
            is_rgb = True
            if n_samples == 4:
                raw = np.take(raw, [0, 1, 2], axis=s_axis)
    data = _to_tczyx(raw, original_axes, name)
    return data, original_axes, is_rgb, pixel_size


def _same_shaped_series(tif: Any) -> list[Any]:
    """Return the series of a tifffile "shaped" file if all look alike."""
    if not tif.is_shaped or len(tif.series) < 2:
        return []
    first = tif.series[0]
    for series in tif.series[1:]:
        if (series.shape, series.dtype, series.axes) != (
            first.shape,
            first.dtype,
            first.axes,
        ):
            return []
    return list(tif.series)


def _check_codec(page: Any, name: str) -> None:
    """Fail early, with advice, if the page's compression cannot be decoded."""
    compression = int(page.compression)
    if compression in tifffile.TIFF.DECOMPRESSORS:
        return
    try:
        tifffile.TIFF.DECOMPRESSORS[compression]
    except KeyError as exc:
        raise _codec_error(
            name, str(exc.args[0]) if exc.args else "", page.compression
        ) from exc


def _codec_error(
    name: str, detail: str, compression: Any = None
) -> ImageReadError:
    match = re.search(r"(?:COMPRESSION|PREDICTOR)\.(\w+)", detail)
    if compression is not None:
        label = getattr(compression, "name", str(compression))
    elif match:
        label = match.group(1)
    else:
        label = "an unsupported method"
    if "imagecodecs" in detail:
        return ImageReadError(
            f"Cannot read '{name}': its pixels are compressed with {label}, and "
            "the Python package 'imagecodecs' needed to decompress them is not "
            "installed. Install it (pip install imagecodecs), or save the image "
            "again without compression in Fiji."
        )
    return ImageReadError(
        f"Cannot read '{name}': its pixels are compressed with {label}, which "
        "cannot be decoded here. Save the image again without compression, or "
        f"with LZW compression, in Fiji. (Technical detail: {detail[:200]})"
    )


# Where each tifffile axis letter may go, in order of preference; any other
# letter (R, E, H, A, P, ...) can only become T.
_AXIS_TARGETS = {"T": "T", "C": "C", "Z": "Z", "S": "C", "I": "ZT", "Q": "ZT"}
_AXIS_PRIORITY = {"T": 0, "C": 0, "Z": 0, "S": 1, "I": 2, "Q": 2}


def _to_tczyx(raw: np.ndarray, axes: str, name: str) -> np.ndarray:
    """Move the axes of a tifffile series to ``TCZYX``, inserting size-1 axes."""
    if "Y" not in axes or "X" not in axes:
        raise ImageReadError(
            f"Cannot read '{name}': the TIFF stores its data with axes "
            f"'{axes}', which do not describe an image plane. {_SAVE_AS_TIFF}"
        )
    # Size-1 axes carry no data; dropping them first keeps the mapping simple.
    keep = [i for i, a in enumerate(axes) if raw.shape[i] > 1 or a in "YX"]
    raw = raw.reshape([raw.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)

    # Explicit axes claim their target first, then samples, then the anonymous
    # page axes of plain multi-page TIFFs (read as z, like Fiji), then others.
    order = sorted(
        (i for i, a in enumerate(axes) if a not in "YX"),
        key=lambda i: _AXIS_PRIORITY.get(axes[i], 3),
    )
    target: dict[str, int] = {}
    for i in order:
        free = [d for d in _AXIS_TARGETS.get(axes[i], "T") if d not in target]
        if not free:
            raise ImageReadError(
                f"Cannot read '{name}': it has more dimensions than time, "
                f"channels and z-slices (axes '{axes}', shape "
                f"{tuple(raw.shape)}). Split it into simpler stacks in Fiji "
                "(e.g. Image > Stacks > Tools > Reduce Dimensionality...) and "
                "save them as TIFF."
            )
        target[free[0]] = i
    target["Y"] = axes.index("Y")
    target["X"] = axes.index("X")

    source = [target[d] for d in _AXES if d in target]
    moved = np.moveaxis(raw, source, range(len(source)))
    shape = [raw.shape[target[d]] if d in target else 1 for d in _AXES]
    return moved.reshape(shape)


def _tiff_pixel_size(tif: Any) -> float | None:
    """Return µm per pixel along X from OME, ImageJ or TIFF tags, or None."""
    for reader in (_ome_pixel_size, _imagej_pixel_size, _tag_pixel_size):
        try:
            value = reader(tif)
        except Exception:
            # Metadata is free text written by many programs: a bad entry must
            # only cost the pixel size, never the image.
            value = None
        if value is not None:
            return value
    return None


def _ome_pixel_size(tif: Any) -> float | None:
    if not tif.is_ome or not tif.ome_metadata:
        return None
    root = ET.fromstring(tif.ome_metadata)
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Pixels":
            value = element.get("PhysicalSizeX")
            if value is None:
                return None
            unit = element.get("PhysicalSizeXUnit", "µm")
            return _positive(float(value) * _UNIT_TO_UM[unit.strip().lower()])
    return None


def _imagej_pixel_size(tif: Any) -> float | None:
    meta = tif.imagej_metadata
    if not meta or "unit" not in meta:
        return None
    unit = str(meta["unit"]).strip().lower()
    per_unit = _x_resolution(tif)
    if per_unit is None:
        return None
    if unit in ("inch", "inches"):
        return _plausible(25400.0 / per_unit)
    if unit in _UNIT_TO_UM:
        return _positive(_UNIT_TO_UM[unit] / per_unit)
    return None


def _tag_pixel_size(tif: Any) -> float | None:
    page = tif.pages.first
    per_unit = _x_resolution(tif)
    tag = page.tags.get("ResolutionUnit")
    if per_unit is None or per_unit == 1.0 or tag is None:
        return None
    unit = int(tag.value)
    if unit == 2:  # inch
        return _plausible(25400.0 / per_unit)
    if unit == 3:  # centimetre
        return _plausible(1e4 / per_unit)
    return None


def _x_resolution(tif: Any) -> float | None:
    """Return the XResolution tag in pixels per unit, or None."""
    tag = tif.pages.first.tags.get("XResolution")
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, (tuple, list)):
        numerator, denominator = value[:2]
        if not denominator:
            return None
        value = numerator / denominator
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _positive(value: float) -> float | None:
    return value if math.isfinite(value) and value > 0 else None


def _plausible(value: float) -> float | None:
    low, high = _PLAUSIBLE_UM
    return value if math.isfinite(value) and low <= value <= high else None


# --------------------------------------------------------------------------
# PNG and JPEG
# --------------------------------------------------------------------------


def _read_pillow(
    stream: Any, name: str
) -> tuple[np.ndarray, str, bool, float | None]:
    try:
        with Image.open(stream) as image:
            image.load()
            fmt = image.format
            mode = image.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N", "L", "F"):
                plane = np.asarray(image)
            elif mode == "I":
                plane = np.asarray(image)
                # Pillow may open 16-bit grey PNGs as 32-bit "I"
                if fmt == "PNG" and 0 <= plane.min() and plane.max() <= 65535:
                    plane = plane.astype(np.uint16)
            elif mode in ("1", "LA", "La"):
                plane = np.asarray(image.convert("L"))
            else:
                # RGB, RGBA, palette, CMYK, YCbCr...: three colour channels,
                # alpha dropped
                plane = np.asarray(image.convert("RGB"))
            pixel_size = _pillow_pixel_size(image)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            f"Cannot read '{name}': the image is too large to open safely "
            f"({exc}). Crop or bin it in Fiji and save it as TIFF."
        ) from exc
    except Exception as exc:
        raise _damaged(name, exc) from exc

    if plane.ndim == 3:
        data = np.moveaxis(plane, -1, 0)[np.newaxis, :, np.newaxis]
        return data, "YXS", True, pixel_size
    return plane[np.newaxis, np.newaxis, np.newaxis], "YX", False, pixel_size


def _pillow_pixel_size(image: Any) -> float | None:
    try:
        dpi = image.info.get("dpi")
        if not dpi:
            return None
        return _plausible(25400.0 / float(dpi[0]))
    except Exception:
        return None


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _channels_identical(data: np.ndarray) -> bool:
    first = data[:, 0]
    return all(np.array_equal(first, data[:, c]) for c in range(1, data.shape[1]))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _holds(n_t: int, n_c: int, n_z: int) -> str:
    parts = []
    if n_t > 1:
        parts.append(_count(n_t, "time point"))
    if n_c > 1:
        parts.append(_count(n_c, "channel"))
    if n_z > 1:
        parts.append(_count(n_z, "z-slice"))
    return _join(parts) or "a single plane"


def _is_max(z: object) -> bool:
    return isinstance(z, str) and z.strip().lower() == "max"


def _check_index(index: object, size: int, what: str, name: str) -> int:
    """Return `index` as an int after checking it lies in ``0..size-1``."""
    if index is None:
        return 0  # only reached for dimensions of size 1
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"{what} must be an integer, not {index!r}")
    index = int(index)
    if 0 <= index < size:
        return index
    if size == 1:
        choice = f"it holds a single {what}: use {what} 0"
    else:
        choice = f"it holds {size} {what}s: choose a {what} from 0 to {size - 1}"
    raise ImageReadError(f"'{name}' has no {what} {index}: {choice}.")


def _format_value(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
