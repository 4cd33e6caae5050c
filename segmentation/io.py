"""Read microscope images into numpy arrays and pick the 2-D plane to segment.

Every supported file is normalised to a 5-D array with axes ``"TCZYX"``
(time, channel, z, y, x), keeping the dtype it was stored with: no rescaling
ever happens here.  :func:`select_plane` then reduces that array to one 2-D
plane by an explicit choice of channel, z-slice (or maximum projection) and
time point, and :func:`validate_plane` rejects planes on which segmentation
would be meaningless.

Anything that goes wrong while reading raises :class:`ImageReadError` whose
message names the file, says what is wrong and what to do about it.

Images are checked against size limits (:class:`SizeLimits`) from their
header, before any pixel is decoded: a small file that declares a huge image
is refused with :class:`ImageTooLargeError`, never allowed to fill the memory.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, JpegImagePlugin, PngImagePlugin

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_BYTES",
    "MAX_BYTES_ENV",
    "MAX_MEGAPIXELS",
    "MAX_MEGAPIXELS_ENV",
    "MAX_TIFF_PAGES",
    "ImageInfo",
    "ImageReadError",
    "ImageTooLargeError",
    "SizeLimits",
    "is_hidden",
    "is_image_name",
    "load_plane",
    "read_image",
    "select_plane",
    "size_limits",
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
# Enough for the file signatures and a PNG's IHDR chunk (size, bit depth).
_HEADER_BYTES = 32

# A pixel size derived from inch/cm resolution tags is only believed inside
# this range: those tags usually hold a screen or print DPI (72 dpi would give
# 353 µm/px), not a microscope calibration.
_PLAUSIBLE_UM = (0.01, 100.0)

# An explicit calibration (OME, ImageJ) outside this range is written by a
# broken or hostile program (0.1 nm to 1 cm per pixel covers every
# microscope); it is ignored with a note in ``ImageInfo.notes``.
CALIBRATED_UM = (1e-4, 1e4)

# Size limits, checked from the file's header before any pixel is decoded.
# 150 megapixels (about 12,000 × 12,000) is what the whole pipeline can hold
# on a 24 GB computer; the byte cap bounds stacks of many smaller planes.
MAX_MEGAPIXELS = 150.0
MAX_BYTES = 2_000_000_000
MAX_MEGAPIXELS_ENV = "NUCLEI_MAX_MEGAPIXELS"
MAX_BYTES_ENV = "NUCLEI_MAX_GIGABYTES"
# Walking the chain of TIFF pages costs memory per page before any pixel is
# read; no microscope file we know has more pages than this.
MAX_TIFF_PAGES = 100_000

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


class ImageTooLargeError(ImageReadError):
    """The image is larger than the limits, or than the memory available.

    Raised before decoding when the header declares more pixels or bytes than
    :class:`SizeLimits` allows, and when decoding runs out of memory.  The
    message gives the size, the limit and what to do.
    """


@dataclass(frozen=True)
class SizeLimits:
    """How large an image :func:`read_image` agrees to decode.

    Attributes
    ----------
    max_megapixels : float
        Largest plane (height × width), in millions of pixels.
    max_bytes : int
        Largest total decoded size of everything read from one file (all
        planes, channels and samples), in bytes.

    Examples
    --------
    >>> SizeLimits(max_megapixels=150, max_bytes=2_000_000_000).max_pixels
    150000000
    """

    max_megapixels: float = MAX_MEGAPIXELS
    max_bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        for field_name in ("max_megapixels", "max_bytes"):
            value = getattr(self, field_name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{field_name} must be a number above 0, not {value!r}")

    @property
    def max_pixels(self) -> int:
        """The plane limit in pixels."""
        return int(self.max_megapixels * 1_000_000)


def size_limits(
    max_megapixels: float | None = None, max_bytes: int | None = None
) -> SizeLimits:
    """Return the size limits in force: arguments, else environment, else defaults.

    Parameters
    ----------
    max_megapixels : float, optional
        Largest plane in megapixels.  Default: the environment variable
        ``NUCLEI_MAX_MEGAPIXELS``, else :data:`MAX_MEGAPIXELS` (150).
    max_bytes : int, optional
        Largest decoded size in bytes.  Default: the environment variable
        ``NUCLEI_MAX_GIGABYTES`` (in GB, e.g. ``4``), else :data:`MAX_BYTES`
        (2 GB).

    Returns
    -------
    SizeLimits

    Raises
    ------
    ImageReadError
        If an environment variable holds something other than a positive
        number (the message names the variable).
    ValueError
        If an argument is not a positive number.
    """
    if max_megapixels is None:
        max_megapixels = _env_number(MAX_MEGAPIXELS_ENV, MAX_MEGAPIXELS, "megapixels")
    if max_bytes is None:
        max_bytes = int(_env_number(MAX_BYTES_ENV, MAX_BYTES / 1e9, "gigabytes") * 1e9)
    return SizeLimits(max_megapixels=max_megapixels, max_bytes=max_bytes)


def _env_number(variable: str, default: float, unit: str) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ImageReadError(
            f"The environment variable {variable} must be a number of {unit} "
            f"above 0 (e.g. {variable}={default:g}), not '{text[:40]}'. Correct "
            "it, or remove it to use the default, and start the app again."
        )
    return value


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
    notes : tuple of str
        What the reader left out or ignored, in words for people: other
        images of a different size in the same file, a pixel size in the
        metadata that cannot be right.  Empty when there is nothing to say.
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
    notes: tuple[str, ...] = ()

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


# Files and folders that operating systems and archivers add next to images:
# macOS (.DS_Store, ._name AppleDouble files, __MACOSX in zips), Windows
# (Thumbs.db, desktop.ini, $RECYCLE.BIN, System Volume Information).
_SYSTEM_NAMES = frozenset(
    {
        "__macosx",
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        "$recycle.bin",
        "system volume information",
    }
)


def is_hidden(path: str | os.PathLike) -> bool:
    """Return True for system files that a folder or a zip drags along.

    The one rule for the command line, the zip reader and the Batch page: a
    path is hidden when any of its parts starts with ``"."`` (``.DS_Store``,
    ``.git``, the ``._name.tif`` AppleDouble files macOS leaves on USB drives)
    or is ``__MACOSX``, ``Thumbs.db``, ``desktop.ini``, ``$RECYCLE.BIN`` or
    ``System Volume Information`` (ignoring case).  The parts ``.`` and
    ``..`` are not names and do not count.

    Parameters
    ----------
    path : str or path-like
        Relative path as found in a folder, a zip or an upload; ``/`` and
        ``\\`` both separate parts.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_hidden("exp/__MACOSX/._img.tif"), is_hidden("exp/img.tif")
    (True, False)
    >>> is_hidden("../img.tif")
    False
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    for part in text.replace("\\", "/").split("/"):
        if part in ("", ".", ".."):
            continue
        if part.startswith(".") or part.strip().lower() in _SYSTEM_NAMES:
            return True
    return False


def read_image(
    source: str | os.PathLike | bytes,
    name: str | None = None,
    *,
    max_megapixels: float | None = None,
    max_bytes: int | None = None,
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
    max_megapixels : float, optional
        Largest plane to decode, in megapixels (see :func:`size_limits`:
        default ``NUCLEI_MAX_MEGAPIXELS`` or 150).
    max_bytes : int, optional
        Largest total decoded size in bytes (default ``NUCLEI_MAX_GIGABYTES``
        or 2 GB).

    Returns
    -------
    data : ndarray
        5-D array with axes ``"TCZYX"`` and the dtype stored in the file.
    info : ImageInfo
        Shape, axes, dtype and pixel size of `data`, and notes on what was
        left out.

    Raises
    ------
    ImageTooLargeError
        If the header declares a plane or a total size above the limits (no
        pixel is decoded then), or decoding runs out of memory.
    ImageReadError
        If the file is missing, empty, not a supported format, truncated,
        damaged, or uses a compression that cannot be decoded.

    Notes
    -----
    TIFF covers 8/16/32-bit integer and floating point data, multi-page
    files, ImageJ hyperstacks, OME-TIFF, RGB and LZW/deflate/zstd compression
    (through ``imagecodecs``).  Pages of a plain multi-page TIFF are read as
    z-slices, as Fiji does; when a file holds images of different sizes only
    the first is read, and ``info.notes`` says so.  The pixel size comes from
    OME metadata, ImageJ calibration or the TIFF resolution tags, in that
    order; an impossible value is ignored with a note.  PNGs keep their 8 or
    16 bits, colour ones included.
    """
    limits = size_limits(max_megapixels, max_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        content: bytes | None = bytes(source)
        path = None
        name = name or _DEFAULT_UPLOAD_NAME
        size = len(content)
        header = content[:_HEADER_BYTES]
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

    # A MemoryError is turned into a message only after its handler has
    # ended, so that its traceback (and the arrays it holds) is freed first.
    out_of_memory = False
    try:
        return _read_image(content, path, name, kind, header, limits)
    except MemoryError:
        out_of_memory = True
    if out_of_memory:
        raise _out_of_memory(name)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_image(
    content: bytes | None,
    path: Path | None,
    name: str,
    kind: str,
    header: bytes,
    limits: SizeLimits,
) -> tuple[np.ndarray, ImageInfo]:
    stream: Any = path if content is None else io.BytesIO(content)
    if kind == "tiff":
        data, original_axes, is_rgb, pixel_size, notes = _read_tiff(stream, name, limits)
    elif kind == "png" and _png_is_deep_colour(header):
        data, original_axes, is_rgb, pixel_size, notes = _read_deep_png(
            content, path, name, limits
        )
    else:
        data, original_axes, is_rgb, pixel_size, notes = _read_pillow(
            stream, name, kind, limits
        )

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
        notes=tuple(notes),
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
    ImageTooLargeError
        If there is not enough memory for the maximum projection.

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
        out_of_memory = False
        try:
            return data[ti, ci].max(axis=0)
        except MemoryError:
            out_of_memory = True
        if out_of_memory:
            raise _out_of_memory(info.name)
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
    *,
    max_megapixels: float | None = None,
    max_bytes: int | None = None,
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
    max_megapixels, max_bytes : optional
        Size limits, see :func:`read_image`.

    Returns
    -------
    plane : ndarray
        2-D ``(Y, X)`` array with the dtype stored in the file.
    info : ImageInfo
        Description of the whole file.

    Raises
    ------
    ImageTooLargeError
        If the image is above the size limits or does not fit in memory.
    ImageReadError
        If the file cannot be read, the choice is missing or invalid, or the
        plane cannot be segmented.
    """
    data, info = read_image(
        source, name, max_megapixels=max_megapixels, max_bytes=max_bytes
    )
    plane = select_plane(data, info, channel=channel, z=z, t=t)
    del data  # a maximum projection no longer needs the stack
    out_of_memory = False
    try:
        return validate_plane(plane, info.name), info
    except MemoryError:
        out_of_memory = True
    if out_of_memory:
        raise _out_of_memory(info.name)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------
# File access and format detection
# --------------------------------------------------------------------------


def _probe_file(path: Path, name: str) -> tuple[int, bytes]:
    """Return the size and first bytes of the file at `path`."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(_HEADER_BYTES)
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


_SHRINK_TODO = (
    "Crop it or bin it in Fiji (Image > Crop, or Image > Transform > Bin) and "
    "save the result as TIFF"
)


def _raise_limit(variable: str, unit: str) -> str:
    return (
        f"or, on a computer with enough memory, raise the limit: set the "
        f"environment variable {variable} to a larger number of {unit} before "
        "starting the app or the command line."
    )


def _check_plane(name: str, height: int, width: int, limits: SizeLimits) -> None:
    """Refuse a plane of more than ``limits.max_megapixels``."""
    if height * width <= limits.max_pixels:
        return
    side = int(math.sqrt(limits.max_pixels))
    raise ImageTooLargeError(
        f"Cannot read '{name}': the image is too large. One plane is "
        f"{width:,}×{height:,} pixels ({_megapixels(height * width / 1e6)} "
        f"megapixels); the limit is {_megapixels(limits.max_megapixels)} "
        "megapixels (about "
        f"{side:,}×{side:,}). {_SHRINK_TODO}, "
        f"{_raise_limit(MAX_MEGAPIXELS_ENV, 'megapixels')}"
    )


def _check_bytes(name: str, n_bytes: int, what: str, limits: SizeLimits) -> None:
    """Refuse to decode more than ``limits.max_bytes``; `what` says of what."""
    if n_bytes <= limits.max_bytes:
        return
    raise ImageTooLargeError(
        f"Cannot read '{name}': the image is too large. Reading it needs "
        f"{format_bytes(n_bytes)} of memory ({what}); the limit is "
        f"{format_bytes(limits.max_bytes)}. In Fiji, keep only the channel and "
        "z-slices you need (Image > Duplicate...), or crop or bin it, and save "
        f"the result as TIFF; {_raise_limit(MAX_BYTES_ENV, 'gigabytes')}"
    )


def _out_of_memory(name: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"Cannot read '{name}': the image is too large for the memory of this "
        f"computer (it ran out of memory while reading it). {_SHRINK_TODO}, or "
        "use a computer with more memory."
    )


def format_bytes(n_bytes: float) -> str:
    """A size as people read it: "4.3 GB", "512 MB", "5.0 kB"."""
    unit, size = next(((u, s) for u, s in (("GB", 1e9), ("MB", 1e6)) if n_bytes >= s), ("kB", 1e3))
    value = n_bytes / size
    return f"{value:,.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"


def _megapixels(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


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
    stream: Any, name: str, limits: SizeLimits
) -> tuple[np.ndarray, str, bool, float | None, list[str]]:
    log = logging.getLogger("tifffile")
    damage = _TiffDamageLog()
    log.addHandler(damage)
    out_of_memory = False
    try:
        with tifffile.TiffFile(stream) as tif:
            # counting the pages walks their chain without loading them
            n_pages = len(tif.pages)
            if n_pages > MAX_TIFF_PAGES:
                raise ImageTooLargeError(
                    f"Cannot read '{name}': the file is too large: it holds "
                    f"{n_pages:,} pages, more than the {MAX_TIFF_PAGES:,} this "
                    "app reads. Split it into smaller stacks in Fiji (Image > "
                    "Stacks > Tools > Make Substack...) and save them as TIFF."
                )
            if not tif.series:
                raise ImageReadError(
                    f"Cannot read '{name}': the TIFF file contains no image. "
                    f"{_SAVE_AS_TIFF}"
                )
            series = tif.series[0]
            keyframe = series.keyframe
            same = _same_shaped_series(tif)
            # Pages written one by one with tifffile each become their own
            # series; Fiji opens such a file as one stack, so do we.
            used = same if len(same) > 1 else [series]
            for one in used:
                _check_codec(one.keyframe, name)
            _check_tiff_size(used, name, limits)
            if len(used) > 1:
                raw = np.empty((len(used), *series.shape), series.dtype)
                for i, one in enumerate(used):
                    one.asarray(out=raw[i])
                original_axes = "I" + str(series.axes)
            else:
                raw = series.asarray()
                original_axes = str(series.axes)
            photometric = int(keyframe.photometric)
            notes = _ignored_images(tif, used)
            pixel_size, pixel_notes = _tiff_pixel_size(tif)
            notes += pixel_notes
    except ImageReadError:
        raise
    except MemoryError:
        out_of_memory = True
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
    if out_of_memory:
        raise _out_of_memory(name)
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
    return data, original_axes, is_rgb, pixel_size, notes


def _check_tiff_size(used: list[Any], name: str, limits: SizeLimits) -> None:
    """Refuse, from the tags alone, series that would not fit the limits.

    Checks the declared plane and total size of every series to be read, and
    every page they decode: its plane, and its tile or strip (a tile declared
    larger than the image would be allocated whole).
    """
    total = 0
    for one in used:
        shape = tuple(int(n) for n in one.shape)
        axes = str(one.axes)
        itemsize = np.dtype(one.dtype).itemsize
        height = shape[axes.index("Y")] if "Y" in axes else 1
        width = shape[axes.index("X")] if "X" in axes else 1
        _check_plane(name, height, width, limits)
        total += math.prod(shape) * itemsize
        keyframes = {id(one.keyframe): one.keyframe}
        for page in one.pages:
            if page is not None:
                key = getattr(page, "keyframe", None) or page
                keyframes.setdefault(id(key), key)
        for page in keyframes.values():
            _check_plane(name, int(page.imagelength), int(page.imagewidth), limits)
            chunk = math.prod(int(n) for n in page.chunks)
            chunk_bytes = chunk * np.dtype(page.dtype).itemsize
            if chunk_bytes > limits.max_bytes:
                _check_bytes(
                    name,
                    chunk_bytes,
                    f"its tiles or strips are declared as "
                    f"{' × '.join(f'{int(n):,}' for n in page.chunks)} values",
                    limits,
                )
    first = used[0]
    axes = str(first.axes)
    plane = math.prod(
        int(n) for n, a in zip(first.shape, axes) if a in "YX"
    ) or 1
    n_planes = total // (plane * np.dtype(first.dtype).itemsize)
    height = first.shape[axes.index("Y")] if "Y" in axes else 1
    width = first.shape[axes.index("X")] if "X" in axes else 1
    _check_bytes(
        name,
        total,
        f"{n_planes:,} planes of {int(width):,}×{int(height):,} pixels, "
        f"{np.dtype(first.dtype).name}",
        limits,
    )


def _ignored_images(tif: Any, used: list[Any]) -> list[str]:
    """A note when the file holds images besides the one that is read."""
    series = tif.series
    first = used[0]
    if len(used) > 1:
        return []
    n_images = len(series)
    if n_images == 1 and first.kind in ("generic", "uniform", "shaped"):
        # tifffile may leave pages of another size (thumbnails) out of all series
        n_images += max(0, len(tif.pages) - len(first.pages))
    if n_images == 1:
        return []
    axes = str(first.axes)
    height = first.shape[axes.index("Y")] if "Y" in axes else 1
    width = first.shape[axes.index("X")] if "X" in axes else 1
    shapes = {tuple(s.shape) for s in series}
    different = len(shapes) > 1 or len(series) < n_images
    return [
        f"This file holds {n_images} images"
        + (" of different sizes" if different else "")
        + f"; only the first, {int(width)}×{int(height)}, is used."
    ]


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


def _tiff_pixel_size(tif: Any) -> tuple[float | None, list[str]]:
    """Return µm per pixel along X from OME, ImageJ or TIFF tags, and notes.

    An OME or ImageJ calibration outside :data:`CALIBRATED_UM` (or NaN,
    infinite, zero or negative) is ignored, and a note says so.
    """
    notes: list[str] = []
    readers = (
        (_ome_pixel_size, "OME metadata"),
        (_imagej_pixel_size, "ImageJ calibration"),
        (_tag_pixel_size, ""),
    )
    for reader, source in readers:
        try:
            value = reader(tif)
        except Exception:
            # Metadata is free text written by many programs: a bad entry must
            # only cost the pixel size, never the image.
            value = None
        if value is None:
            continue
        low, high = CALIBRATED_UM
        if not source or (math.isfinite(value) and low <= value <= high):
            return value, notes
        notes.append(
            f"The pixel size in the file's {source} ({value:.4g} µm) cannot be "
            "right, so it is ignored: sizes are given in pixels. Set the pixel "
            "size in the settings if you know it."
        )
    return None, notes


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
            return float(value) * _UNIT_TO_UM[unit.strip().lower()]
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
        return _UNIT_TO_UM[unit] / per_unit
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


def _plausible(value: float) -> float | None:
    low, high = _PLAUSIBLE_UM
    return value if math.isfinite(value) and low <= value <= high else None


# --------------------------------------------------------------------------
# PNG and JPEG
# --------------------------------------------------------------------------


# Opening through the format's own class, not Image.open, skips Pillow's
# decompression-bomb check (a warning from 89 megapixels, an error from 179):
# our own limits, checked from the header first, decide and explain.
_PILLOW_FORMATS = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
}
# Bytes per pixel of each Pillow mode once decoded.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2,
               "I;16N": 2, "I": 4, "F": 4, "LA": 2, "La": 2, "PA": 2,
               "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4,
               "RGBa": 4, "RGBX": 4, "CMYK": 4}


def _read_pillow(
    stream: Any, name: str, kind: str, limits: SizeLimits
) -> tuple[np.ndarray, str, bool, float | None, list[str]]:
    out_of_memory = False
    try:
        with _PILLOW_FORMATS[kind](stream) as image:
            width, height = image.size
            mode = image.mode
            _check_plane(name, height, width, limits)
            # decoded once by Pillow, then copied into numpy (x2), plus the
            # colour conversion (x3 channels at most)
            per_pixel = _MODE_BYTES.get(mode, 4)
            _check_bytes(
                name,
                height * width * per_pixel,
                f"one plane of {width:,}×{height:,} pixels, {mode}",
                limits,
            )
            image.load()
            fmt = image.format
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
    except ImageReadError:
        raise
    except MemoryError:
        out_of_memory = True
    except Image.DecompressionBombError as exc:  # pragma: no cover - bypassed
        raise ImageTooLargeError(
            f"Cannot read '{name}': the image is too large to open safely "
            f"({exc}). {_SHRINK_TODO}."
        ) from exc
    except Exception as exc:
        raise _damaged(name, exc) from exc
    if out_of_memory:
        raise _out_of_memory(name)

    if plane.ndim == 3:
        data = np.moveaxis(plane, -1, 0)[np.newaxis, :, np.newaxis]
        return data, "YXS", True, pixel_size, []
    return plane[np.newaxis, np.newaxis, np.newaxis], "YX", False, pixel_size, []


def _png_is_deep_colour(header: bytes) -> bool:
    """True for a 16-bit PNG with colour or alpha, which Pillow cuts to 8 bits."""
    # signature (8), IHDR length and type (8), width, height, depth, colour type
    if len(header) < 26 or header[12:16] != b"IHDR":
        return False
    depth, colour_type = header[24], header[25]
    return depth == 16 and colour_type in (2, 4, 6)  # RGB, grey+alpha, RGBA


def _read_deep_png(
    content: bytes | None, path: Path | None, name: str, limits: SizeLimits
) -> tuple[np.ndarray, str, bool, float | None, list[str]]:
    """Read a 16-bit colour PNG at its full 16 bits with imagecodecs."""
    try:
        import imagecodecs
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ImageReadError(
            f"Cannot read '{name}': it is a 16-bit colour PNG, which needs the "
            "Python package 'imagecodecs' (pip install imagecodecs). Or save it "
            "as TIFF in Fiji."
        ) from exc
    try:
        if content is None:
            assert path is not None
            content = path.read_bytes()
        stream = io.BytesIO(content)
        with PngImagePlugin.PngImageFile(stream) as image:
            width, height = image.size
            pixel_size = _pillow_pixel_size(image)
    except Exception as exc:
        raise _damaged(name, exc) from exc
    _check_plane(name, height, width, limits)
    channels = {2: 3, 4: 2, 6: 4}[content[25]]
    _check_bytes(
        name,
        height * width * channels * 2,
        f"one plane of {width:,}×{height:,} pixels, {channels} channels of uint16",
        limits,
    )
    out_of_memory = False
    try:
        plane = imagecodecs.png_decode(content)
    except MemoryError:
        out_of_memory = True
    except Exception as exc:
        raise _damaged(name, exc) from exc
    if out_of_memory:
        raise _out_of_memory(name)
    if plane.shape[:2] != (height, width) or plane.ndim != 3:
        raise _damaged(name, f"decoded shape {plane.shape} is not {height}×{width}")
    if plane.shape[2] == 2:  # grey + alpha: the grey is the image
        plane = plane[..., 0]
        return plane[np.newaxis, np.newaxis, np.newaxis], "YX", False, pixel_size, []
    plane = plane[..., :3]  # alpha dropped
    data = np.moveaxis(plane, -1, 0)[np.newaxis, :, np.newaxis]
    return data, "YXS", True, pixel_size, []


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
