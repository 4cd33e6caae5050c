"""Tests for segmentation.io: reading files into TCZYX arrays and picking planes."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segmentation.io import (
    IMAGE_SUFFIXES,
    ImageInfo,
    ImageReadError,
    ImageTooLargeError,
    SizeLimits,
    is_hidden,
    is_image_name,
    load_plane,
    read_image,
    select_plane,
    size_limits,
    validate_plane,
)

RNG = np.random.default_rng(42)


def random_image(shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (RNG.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def write_tiff(path: Path, data: np.ndarray, **kwargs) -> Path:
    tifffile.imwrite(path, data, **kwargs)
    return path


def write_pillow(path: Path, data: np.ndarray, **kwargs) -> Path:
    Image.fromarray(data).save(path, **kwargs)
    return path


# --------------------------------------------------------------------------
# TIFF flavours
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
)
def test_tiff_round_trip_keeps_values_and_dtype(tmp_path, dtype):
    arr = random_image((40, 50), dtype)
    path = write_tiff(tmp_path / "plane.tif", arr)

    data, info = read_image(path)

    assert data.shape == (1, 1, 1, 40, 50)
    assert data.dtype == np.dtype(dtype)
    assert info.dtype == dtype
    np.testing.assert_array_equal(data[0, 0, 0], arr)
    assert (info.n_t, info.n_c, info.n_z, info.height, info.width) == (1, 1, 1, 40, 50)
    assert info.axes == "TCZYX"
    assert info.shape == data.shape
    assert info.name == "plane.tif"
    assert info.is_rgb is False


@pytest.mark.parametrize("compression", ["lzw", "zlib", "adobe_deflate", "zstd"])
def test_compressed_tiff_reads_exactly(tmp_path, compression):
    arr = random_image((3, 64, 48), "uint16")
    path = write_tiff(
        tmp_path / "packed.tif", arr, compression=compression, photometric="minisblack"
    )
    with tifffile.TiffFile(path) as tif:  # the file really is compressed
        assert tif.pages.first.compression != 1

    data, info = read_image(path)

    assert info.dtype == "uint16"
    np.testing.assert_array_equal(data[0, 0], arr)


def test_big_endian_tiff_is_returned_in_native_byte_order(tmp_path):
    arr = random_image((20, 30), "uint16")
    path = write_tiff(tmp_path / "be.tif", arr, byteorder=">")

    data, info = read_image(path)

    assert data.dtype.isnative
    assert info.dtype == "uint16"
    np.testing.assert_array_equal(data[0, 0, 0], arr)


def test_imagej_hyperstack_axes_pixel_size_and_planes(tmp_path):
    arr = random_image((1, 5, 2, 64, 64), "uint16")
    path = write_tiff(
        tmp_path / "hyper.tif",
        arr,
        imagej=True,
        metadata={"axes": "TZCYX", "unit": "um"},
        resolution=(1 / 0.65, 1 / 0.65),
    )

    data, info = read_image(path)

    assert (info.n_t, info.n_c, info.n_z) == (1, 2, 5)
    assert data.shape == (1, 2, 5, 64, 64)
    assert info.original_axes == "ZCYX"
    assert info.pixel_size_um == pytest.approx(0.65, rel=1e-4)
    plane = select_plane(data, info, channel=1, z=3)
    np.testing.assert_array_equal(plane, arr[0, 3, 1])
    np.testing.assert_array_equal(
        select_plane(data, info, channel=1, z="max"), arr[0, :, 1].max(axis=0)
    )
    assert select_plane(data, info, channel=0, z="max").dtype == np.uint16


@pytest.mark.parametrize(
    ("unit", "per_unit", "expected"),
    [("micron", 1 / 0.2, 0.2), ("nm", 1 / 650.0, 0.65), ("mm", 1 / 0.0005, 0.5)],
)
def test_imagej_units_are_converted_to_micrometres(tmp_path, unit, per_unit, expected):
    path = write_tiff(
        tmp_path / "cal.tif",
        random_image((16, 16), "uint8"),
        imagej=True,
        metadata={"unit": unit},
        resolution=(per_unit, per_unit),
    )

    _, info = read_image(path)

    assert info.pixel_size_um == pytest.approx(expected, rel=1e-4)


def test_ome_tiff_pixel_size_and_channels(tmp_path):
    arr = random_image((3, 32, 40), "uint16")
    path = write_tiff(
        tmp_path / "cells.ome.tif",
        arr,
        ome=True,
        metadata={"axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm"},
    )

    data, info = read_image(path)

    assert info.n_c == 3
    assert info.n_z == 1
    assert info.pixel_size_um == pytest.approx(0.325)
    np.testing.assert_array_equal(data[0, :, 0], arr)


def test_ome_tiff_pixel_size_in_nanometres(tmp_path):
    path = write_tiff(
        tmp_path / "nm.ome.tif",
        random_image((16, 16), "uint16"),
        ome=True,
        metadata={"axes": "YX", "PhysicalSizeX": 108.0, "PhysicalSizeXUnit": "nm"},
    )

    assert read_image(path)[1].pixel_size_um == pytest.approx(0.108)


@pytest.mark.parametrize(
    ("resolution", "unit", "expected"),
    [
        ((72, 72), "INCH", None),  # screen DPI, not a calibration
        ((25400 / 0.5, 25400 / 0.5), "INCH", 0.5),
        ((1e4 / 0.25, 1e4 / 0.25), "CENTIMETER", 0.25),
        ((1, 1), "CENTIMETER", None),
        ((1 / 0.65, 1 / 0.65), "NONE", None),
    ],
)
def test_plain_tiff_resolution_tags(tmp_path, resolution, unit, expected):
    path = write_tiff(
        tmp_path / "res.tif",
        random_image((16, 16), "uint8"),
        resolution=resolution,
        resolutionunit=unit,
    )

    pixel_size = read_image(path)[1].pixel_size_um

    if expected is None:
        assert pixel_size is None
    else:
        assert pixel_size == pytest.approx(expected, rel=1e-4)


def test_tiff_without_resolution_has_unknown_pixel_size(tmp_path):
    path = write_tiff(tmp_path / "plain.tif", random_image((16, 16), "uint8"))

    info = read_image(path)[1]

    assert info.pixel_size_um is None
    assert "pixel size unknown" in info.describe()


@pytest.mark.parametrize("metadata", [None, {}])
def test_multipage_tiff_pages_become_z(tmp_path, metadata):
    # metadata=None: plain pages without any description (as most software
    # writes them); {}: tifffile's own description on every page, which makes
    # each page a separate series
    pages = random_image((3, 20, 30), "uint16")
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for page in pages:
            tif.write(page, metadata=metadata)

    data, info = read_image(path)

    assert (info.n_t, info.n_c, info.n_z) == (1, 1, 3)
    assert info.original_axes in ("IYX", "QYX")
    np.testing.assert_array_equal(data[0, 0], pages)


def test_tiff_pages_of_different_sizes_use_the_first_image(tmp_path):
    big = random_image((40, 50), "uint16")
    with tifffile.TiffWriter(tmp_path / "thumb.tif") as tif:
        tif.write(big)
        tif.write(big[::4, ::4])  # e.g. a thumbnail

    data, info = read_image(tmp_path / "thumb.tif")

    assert info.shape == (1, 1, 1, 40, 50)
    np.testing.assert_array_equal(data[0, 0, 0], big)


def test_rgb_tiff_gives_three_channels(tmp_path):
    rgb = random_image((24, 32, 3), "uint8")
    path = write_tiff(tmp_path / "colour.tif", rgb, photometric="rgb")

    data, info = read_image(path)

    assert info.is_rgb
    assert info.n_c == 3
    assert info.original_axes == "YXS"
    for c in range(3):
        np.testing.assert_array_equal(data[0, c, 0], rgb[..., c])


def test_rgba_tiff_drops_alpha(tmp_path):
    rgba = random_image((24, 32, 4), "uint8")
    path = write_tiff(
        tmp_path / "alpha.tif", rgba, photometric="rgb", extrasamples=["unassalpha"]
    )

    data, info = read_image(path)

    assert info.is_rgb and info.n_c == 3
    np.testing.assert_array_equal(data[0, 2, 0], rgba[..., 2])


def test_grey_image_stored_as_rgb_tiff_collapses_to_one_channel(tmp_path):
    grey = random_image((24, 32), "uint8")
    path = write_tiff(
        tmp_path / "grey_rgb.tif", np.dstack([grey] * 3), photometric="rgb"
    )

    data, info = read_image(path)

    assert info.n_c == 1
    assert not info.is_rgb
    np.testing.assert_array_equal(data[0, 0, 0], grey)
    # a single channel needs no choice any more
    np.testing.assert_array_equal(load_plane(path)[0], grey)


def test_stack_of_two_channels_is_not_collapsed_even_if_identical(tmp_path):
    plane = random_image((16, 16), "uint16")
    path = write_tiff(
        tmp_path / "twins.tif",
        np.stack([plane, plane]),
        imagej=True,
        metadata={"axes": "CYX"},
    )

    assert read_image(path)[1].n_c == 2


def test_unknown_extra_axis_becomes_time(tmp_path):
    arr = random_image((2, 3, 16, 16), "uint16")
    path = write_tiff(
        tmp_path / "tiles.ome.tif", arr, ome=True, metadata={"axes": "RZYX"}
    )

    data, info = read_image(path)

    assert info.original_axes == "RZYX"
    assert (info.n_t, info.n_z) == (2, 3)
    np.testing.assert_array_equal(data[:, 0], arr)


def test_too_many_dimensions_is_an_error(tmp_path):
    # R (e.g. mosaic tiles) can only become T, which is already taken
    arr = random_image((2, 3, 16, 16), "uint16")
    path = write_tiff(
        tmp_path / "mosaic.ome.tif", arr, ome=True, metadata={"axes": "TRYX"}
    )

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'mosaic.ome.tif'", "more dimensions", "TRYX")


# --------------------------------------------------------------------------
# PNG and JPEG
# --------------------------------------------------------------------------


def test_rgb_png_gives_three_channels(tmp_path):
    rgb = random_image((20, 30, 3), "uint8")
    path = write_pillow(tmp_path / "colour.png", rgb)

    data, info = read_image(path)

    assert info.is_rgb and info.n_c == 3
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(np.moveaxis(data[0, :, 0], 0, -1), rgb)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = random_image((20, 30, 4), "uint8")
    rgba[..., 3] = 255  # opaque, so RGB values are stored unchanged
    path = write_pillow(tmp_path / "alpha.png", rgba)

    data, info = read_image(path)

    assert info.n_c == 3
    np.testing.assert_array_equal(np.moveaxis(data[0, :, 0], 0, -1), rgba[..., :3])


def test_grey_png_stored_as_rgb_collapses_to_one_channel(tmp_path):
    grey = random_image((20, 30), "uint8")
    path = write_pillow(tmp_path / "grey_rgb.png", np.dstack([grey] * 3))

    data, info = read_image(path)

    assert info.n_c == 1 and not info.is_rgb
    np.testing.assert_array_equal(data[0, 0, 0], grey)


def test_16_bit_grey_png_keeps_uint16_values(tmp_path):
    arr = random_image((20, 30), "uint16")
    arr[0, 0] = 65535
    path = write_pillow(tmp_path / "deep.png", arr)

    data, info = read_image(path)

    assert info.dtype == "uint16"
    assert info.n_c == 1
    np.testing.assert_array_equal(data[0, 0, 0], arr)


def test_palette_png_is_read_as_colour(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[:5, :, 0] = 200
    rgb[5:, :, 2] = 90
    path = tmp_path / "palette.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(path)

    data, info = read_image(path)

    assert info.n_c == 3
    np.testing.assert_array_equal(np.moveaxis(data[0, :, 0], 0, -1), rgb)


def test_jpeg_reads_approximately(tmp_path):
    # smooth content so that lossy compression stays close
    yy, xx = np.mgrid[:64, :64]
    grey = (yy * 2 + xx).astype(np.uint8)
    path = write_pillow(tmp_path / "photo.JPG", grey, quality=95)

    plane, info = load_plane(path)

    assert info.dtype == "uint8" and info.n_c == 1
    assert np.abs(plane.astype(int) - grey).max() <= 4


def test_png_pixel_size_from_plausible_dpi(tmp_path):
    arr = random_image((8, 8), "uint8")
    path = write_pillow(tmp_path / "cal.png", arr, dpi=(25400 / 0.5, 25400 / 0.5))
    assert read_image(path)[1].pixel_size_um == pytest.approx(0.5, rel=1e-3)

    path = write_pillow(tmp_path / "screen.png", arr, dpi=(96, 96))
    assert read_image(path)[1].pixel_size_um is None


# --------------------------------------------------------------------------
# Bytes input
# --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_bytes_input_matches_path_input(tmp_path, suffix):
    path = tmp_path / f"same{suffix}"
    if suffix == ".tif":
        write_tiff(
            path,
            random_image((2, 20, 30), "uint8"),
            imagej=True,
            metadata={"axes": "CYX", "unit": "um"},
            resolution=(2.0, 2.0),
        )
    else:
        write_pillow(path, random_image((20, 30), "uint8"))

    from_path, info_path = read_image(path)
    from_bytes, info_bytes = read_image(path.read_bytes(), name=path.name)

    np.testing.assert_array_equal(from_bytes, from_path)
    assert info_bytes == info_path


def test_bytes_without_name_are_recognised_by_content():
    buffer = io.BytesIO()
    arr = random_image((10, 10), "uint16")
    tifffile.imwrite(buffer, arr)

    data, info = read_image(buffer.getvalue())

    assert info.name == "uploaded image"
    np.testing.assert_array_equal(data[0, 0, 0], arr)


def test_name_overrides_path_name_in_info_and_messages(tmp_path):
    path = tmp_path / "tmp123.tif"
    path.write_bytes(b"")

    with pytest.raises(ImageReadError, match="'nuclei.tif'"):
        read_image(path, name="nuclei.tif")


# --------------------------------------------------------------------------
# Errors while reading
# --------------------------------------------------------------------------


def assert_read_error(excinfo, *phrases):
    message = str(excinfo.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'empty.tif'", "the file is empty (0 bytes)")


def test_empty_bytes():
    with pytest.raises(ImageReadError) as excinfo:
        read_image(b"", name="upload.png")

    assert_read_error(excinfo, "'upload.png'", "empty")


@pytest.mark.parametrize("compression", [None, "lzw"])
def test_truncated_tiff(tmp_path, compression):
    full = tmp_path / "full.tif"
    write_tiff(full, random_image((256, 256), "uint16"), compression=compression)
    raw = full.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(raw[: len(raw) // 2])

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'cut.tif'", "truncated or damaged")
    assert excinfo.value.__cause__ is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"imagej": True, "metadata": {"axes": "ZCYX"}},
        {"ome": True, "metadata": {"axes": "ZCYX"}},
        {},  # tifffile's own shaped multi-page file
    ],
)
def test_truncated_stack_is_not_silently_shortened(tmp_path, kwargs):
    # tifffile alone would return just the first page of these cut files
    full = tmp_path / "full.tif"
    write_tiff(full, random_image((4, 2, 64, 64), "uint16"), **kwargs)
    raw = full.read_bytes()
    path = tmp_path / "cut_stack.tif"
    path.write_bytes(raw[: int(len(raw) * 0.6)])

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'cut_stack.tif'", "truncated or damaged")


def test_truncated_png(tmp_path):
    full = write_pillow(tmp_path / "full.png", random_image((128, 128), "uint8"))
    raw = full.read_bytes()

    with pytest.raises(ImageReadError) as excinfo:
        read_image(raw[: len(raw) // 2], name="cut.png")

    assert_read_error(excinfo, "'cut.png'", "truncated or damaged")


def test_text_file_named_tif(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("Plate 3, well B4: nuclei look fine.\n")

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'notes.tif'", "this is not a TIFF image", "TIFF header")


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'notes.png'", "not a PNG image")


@pytest.mark.parametrize("name", ["scan.bmp", "stack.CZI"])
def test_unsupported_suffix_lists_supported_formats(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"BM\x00\x00 some bytes")

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, f"'{name}'", "not supported", ".tif", ".png", ".jpg")


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError) as excinfo:
        read_image(tmp_path / "ghost.tif")

    assert_read_error(excinfo, "'ghost.tif'", "does not exist")


def test_png_content_named_tif_is_still_read(tmp_path):
    arr = random_image((8, 9), "uint8")
    path = tmp_path / "mislabelled.tif"
    Image.fromarray(arr).save(path, format="PNG")

    np.testing.assert_array_equal(read_image(path)[0][0, 0, 0], arr)


def test_missing_codec_is_reported_with_advice(tmp_path, monkeypatch):
    arr = random_image((16, 16), "uint16")
    path = write_tiff(tmp_path / "zstd.tif", arr, compression="zstd")

    class NoCodecs(dict):
        def __contains__(self, key):
            return key == 1

        def __getitem__(self, key):
            msg = "<COMPRESSION.ZSTD: 50000> requires the 'imagecodecs' package"
            raise KeyError(msg)

    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", NoCodecs())

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)

    assert_read_error(excinfo, "'zstd.tif'", "ZSTD", "imagecodecs")


# --------------------------------------------------------------------------
# Choosing a plane
# --------------------------------------------------------------------------


@pytest.fixture
def stack_5d(tmp_path):
    arr = random_image((2, 3, 2, 16, 16), "uint16")  # T, Z, C, Y, X
    path = write_tiff(
        tmp_path / "cells.tif", arr, imagej=True, metadata={"axes": "TZCYX"}
    )
    return path, arr


def test_5d_stack_without_choice_names_what_to_choose(stack_5d):
    path, _ = stack_5d

    with pytest.raises(ImageReadError) as excinfo:
        load_plane(path)

    assert_read_error(
        excinfo,
        "'cells.tif' holds 2 time points, 2 channels and 3 z-slices",
        "a channel (0–1)",
        "a z-slice (0–2) or a maximum projection",
        "a time point (0–1)",
    )


def test_5d_stack_partial_choice_asks_only_for_the_rest(stack_5d):
    path, _ = stack_5d

    with pytest.raises(ImageReadError) as excinfo:
        load_plane(path, channel=1, t=0)

    message = str(excinfo.value)
    assert "z-slice (0–2)" in message
    assert "a channel" not in message and "a time point" not in message


def test_5d_stack_full_choice(stack_5d):
    path, arr = stack_5d

    plane, info = load_plane(path, channel=1, z=2, t=1)

    assert (info.n_t, info.n_c, info.n_z) == (2, 2, 3)
    np.testing.assert_array_equal(plane, arr[1, 2, 1])
    projection, _ = load_plane(path, channel=0, z="max", t=0)
    np.testing.assert_array_equal(projection, arr[0, :, 0].max(axis=0))


@pytest.mark.parametrize(
    ("choice", "phrases"),
    [
        ({"channel": 2, "z": 0, "t": 0}, ["no channel 2", "from 0 to 1"]),
        ({"channel": -1, "z": 0, "t": 0}, ["no channel -1"]),
        ({"channel": 0, "z": 3, "t": 0}, ["no z-slice 3", "from 0 to 2"]),
        ({"channel": 0, "z": 0, "t": 5}, ["no time point 5"]),
    ],
)
def test_out_of_range_index(stack_5d, choice, phrases):
    path, _ = stack_5d

    with pytest.raises(ImageReadError) as excinfo:
        load_plane(path, **choice)

    assert_read_error(excinfo, "'cells.tif'", *phrases)


def test_single_plane_needs_no_choice_and_accepts_zero(tmp_path):
    arr = random_image((16, 16), "uint16")
    data, info = read_image(write_tiff(tmp_path / "one.tif", arr))

    np.testing.assert_array_equal(select_plane(data, info), arr)
    np.testing.assert_array_equal(select_plane(data, info, channel=0, z=0, t=0), arr)
    np.testing.assert_array_equal(select_plane(data, info, z="max"), arr)
    with pytest.raises(ImageReadError, match="single channel"):
        select_plane(data, info, channel=1)


def test_invalid_z_word_is_rejected(tmp_path):
    arr = random_image((3, 8, 8), "uint8")
    path = write_tiff(tmp_path / "z.tif", arr, photometric="minisblack")
    data, info = read_image(path)

    with pytest.raises(ImageReadError, match="'max'"):
        select_plane(data, info, z="mean")


# --------------------------------------------------------------------------
# Validating the plane
# --------------------------------------------------------------------------


def test_constant_image_is_rejected(tmp_path):
    path = write_tiff(tmp_path / "flat.tif", np.full((32, 32), 17, np.uint16))

    with pytest.raises(ImageReadError) as excinfo:
        load_plane(path)

    assert_read_error(
        excinfo, "'flat.tif'", "every pixel has the value 17", "nothing to segment"
    )


def test_image_with_nan_is_rejected(tmp_path):
    arr = random_image((32, 32), "float32")
    arr[3, 4] = np.nan
    path = write_tiff(tmp_path / "holes.tif", arr)

    with pytest.raises(ImageReadError) as excinfo:
        load_plane(path)

    assert_read_error(excinfo, "'holes.tif'", "NaN (not-a-number)", "Remove NaNs")


def test_image_with_inf_is_rejected():
    arr = np.zeros((8, 8), np.float64)
    arr[0, 0] = 1
    arr[1, 1] = -np.inf

    with pytest.raises(ImageReadError, match="'x.tif' contains infinite"):
        validate_plane(arr, "x.tif")


@pytest.mark.parametrize(
    ("plane", "phrase"),
    [
        (np.eye(4, dtype=bool), "1-bit"),
        (np.eye(4, dtype=np.complex64), "complex"),
        (np.arange(5, dtype=np.uint8).reshape(1, 5), "at least 2 pixels"),
        (np.arange(8, dtype=np.uint8).reshape(2, 2, 2), "2-D"),
    ],
)
def test_meaningless_planes_are_rejected(plane, phrase):
    with pytest.raises(ImageReadError) as excinfo:
        validate_plane(plane, "odd.tif")

    assert_read_error(excinfo, "'odd.tif'", phrase)


def test_valid_plane_is_returned_unchanged():
    plane = np.arange(12, dtype=np.int16).reshape(3, 4)

    assert validate_plane(plane, "ok.tif") is plane


# --------------------------------------------------------------------------
# Info, file names and listing
# --------------------------------------------------------------------------


def test_describe():
    info = ImageInfo(
        name="cells.tif",
        shape=(1, 2, 5, 256, 512),
        axes="TCZYX",
        dtype="uint16",
        n_t=1,
        n_c=2,
        n_z=5,
        height=256,
        width=512,
        pixel_size_um=0.65,
        original_axes="ZCYX",
        is_rgb=False,
    )

    expected = "2 channels × 5 z-slices of 512×256, uint16, 0.65 µm/px"
    assert info.describe() == expected


def test_is_image_name():
    assert IMAGE_SUFFIXES == (".tif", ".tiff", ".png", ".jpg", ".jpeg")
    assert is_image_name("a.TIF")
    assert is_image_name("dir/cells.ome.tiff")
    assert is_image_name("x.JPeG")
    assert not is_image_name("notes.txt")
    assert not is_image_name("tif")


@pytest.mark.parametrize(
    "path",
    [
        ".DS_Store",
        "exp/._img.tif",
        "__MACOSX/exp/img.tif",
        "exp/__macosx/img.tif",
        "exp/Thumbs.db",
        "exp/THUMBS.DB",
        "exp/desktop.ini",
        ".git/objects/img.tif",
        "exp\\.hidden\\img.tif",
        "$RECYCLE.BIN/img.tif",
        "System Volume Information/img.tif",
        Path("exp/.cache/img.png"),
    ],
)
def test_is_hidden_system_files(path):
    assert is_hidden(path)


@pytest.mark.parametrize(
    "path",
    ["img.tif", "exp/day1/img.tif", "../img.tif", "./img.tif", "a/./b.tif",
     "thumbs.db.tif", "my.folder/img.tif", "__MACOSX_not/img.tif", ""],
)
def test_is_hidden_keeps_ordinary_files(path):
    assert not is_hidden(path)


# --------------------------------------------------------------------------
# Size limits, checked from the header
# --------------------------------------------------------------------------


def test_plane_over_the_megapixel_limit_is_refused(tmp_path):
    path = write_tiff(tmp_path / "plane.tif", random_image((100, 120), "uint16"))

    with pytest.raises(ImageTooLargeError) as caught:
        read_image(path, max_megapixels=0.01)

    message = str(caught.value)
    assert "'plane.tif'" in message and "too large" in message
    assert "120×100 pixels (0.012 megapixels)" in message
    assert "the limit is 0.01 megapixels" in message
    assert "NUCLEI_MAX_MEGAPIXELS" in message and "Fiji" in message
    assert read_image(path, max_megapixels=0.012)[0].shape == (1, 1, 1, 100, 120)


def test_stack_over_the_byte_limit_is_refused(tmp_path):
    stack = random_image((5, 3, 40, 50), "uint16")  # 60,000 bytes
    path = write_tiff(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZCYX"})

    with pytest.raises(ImageTooLargeError, match=r"needs 60 kB.*15 planes of 50×40 pixels, uint16") as caught:
        read_image(path, max_bytes=59_999)
    assert "NUCLEI_MAX_GIGABYTES" in str(caught.value)
    assert read_image(path, max_bytes=60_000)[0].nbytes == 60_000


def test_tifffile_series_of_single_pages_count_together(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for page in random_image((4, 20, 30), "uint8"):
            tif.write(page, metadata={})
    with pytest.raises(ImageTooLargeError, match="4 planes"):
        read_image(path, max_bytes=4 * 600 - 1)
    assert read_image(path, max_bytes=4 * 600)[1].n_z == 4


@pytest.mark.parametrize(("suffix", "kwargs"), [(".png", {}), (".jpg", {"quality": 95})])
def test_png_and_jpeg_limits_are_checked_before_decoding(tmp_path, suffix, kwargs):
    path = write_pillow(tmp_path / f"img{suffix}", random_image((30, 40), "uint8"), **kwargs)
    with pytest.raises(ImageTooLargeError, match="40×30 pixels"):
        read_image(path, max_megapixels=0.001)
    with pytest.raises(ImageTooLargeError, match="needs"):
        read_image(path.read_bytes(), "img" + suffix, max_bytes=1000)
    assert read_image(path, max_megapixels=0.0012)[1].width == 40


def test_too_many_pages(tmp_path, monkeypatch):
    path = write_tiff(tmp_path / "pages.tif", random_image((6, 8, 8), "uint8"))
    monkeypatch.setattr("segmentation.io.MAX_TIFF_PAGES", 5)
    with pytest.raises(ImageTooLargeError, match="6 pages, more than the 5"):
        read_image(path)


def test_limits_come_from_arguments_then_environment_then_defaults(monkeypatch):
    monkeypatch.delenv("NUCLEI_MAX_MEGAPIXELS", raising=False)
    monkeypatch.delenv("NUCLEI_MAX_GIGABYTES", raising=False)
    assert size_limits() == SizeLimits(150.0, 2_000_000_000)
    monkeypatch.setenv("NUCLEI_MAX_MEGAPIXELS", " 400 ")
    monkeypatch.setenv("NUCLEI_MAX_GIGABYTES", "8.5")
    assert size_limits() == SizeLimits(400.0, 8_500_000_000)
    assert size_limits(max_megapixels=10, max_bytes=5) == SizeLimits(10, 5)


@pytest.mark.parametrize("value", ["lots", "-1", "0", "nan", "inf"])
def test_a_bad_environment_variable_is_named_in_the_message(tmp_path, monkeypatch, value):
    path = write_tiff(tmp_path / "a.tif", random_image((8, 8), "uint8"))
    monkeypatch.setenv("NUCLEI_MAX_MEGAPIXELS", value)
    with pytest.raises(ImageReadError, match=r"NUCLEI_MAX_MEGAPIXELS must be a number of megapixels"):
        read_image(path)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "3"])
def test_size_limits_reject_nonsense(value):
    with pytest.raises(ValueError, match="max_megapixels must be a number above 0"):
        SizeLimits(max_megapixels=value)


def test_pillow_bomb_check_does_not_decide(tmp_path, monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; our
    # own limit decides, and its message is ours.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = write_pillow(tmp_path / "img.png", random_image((30, 40), "uint16"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data, info = read_image(path)
    assert info.width == 40 and data.dtype == np.uint16


class _NoMemory(np.ndarray):
    def max(self, *args, **kwargs):
        raise MemoryError


def test_out_of_memory_in_a_projection_is_too_large(stack_5d):
    path, arr = stack_5d
    data, info = read_image(path)
    with pytest.raises(ImageTooLargeError, match="too large for the memory") as caught:
        select_plane(data.view(_NoMemory), info, channel=0, z="max", t=0)
    assert "damaged" not in str(caught.value)


def test_out_of_memory_while_decoding_is_too_large(tmp_path, monkeypatch):
    path = write_tiff(tmp_path / "a.tif", random_image((8, 8), "uint8"))

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", no_memory)
    with pytest.raises(ImageTooLargeError, match="ran out of memory") as caught:
        read_image(path)
    assert caught.value.__context__ is None  # the failed allocation is let go


def test_16_bit_colour_png_keeps_16_bits(tmp_path):
    import imagecodecs

    rgb = random_image((20, 30, 3), "uint16")
    path = tmp_path / "deep.png"
    path.write_bytes(imagecodecs.png_encode(rgb))

    data, info = read_image(path)

    assert info.dtype == "uint16" and info.is_rgb
    np.testing.assert_array_equal(np.moveaxis(data[0, :, 0], 0, -1), rgb)
