"""Build the hostile-input corpus at test time, into a temporary folder.

Nothing here is committed as a binary: every file is written by the code
below, a few MB on disk in all.  The bombs are small files that *declare*
huge images (tiles or strips that all point at one compressed chunk), so a
reader that believes the header allocates gigabytes; the zips carry the
member-level faults of issue 10.  :func:`build` writes everything and
returns the paths by case name; the tests say what each case must give.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import tifffile

# --------------------------------------------------------------------------
# A minimal TIFF writer, for files tifffile would refuse to write
# --------------------------------------------------------------------------

_SHORT, _LONG, _RATIONAL = 3, 4, 5


def tiff_bytes(
    width: int,
    height: int,
    chunk: bytes,
    *,
    tile: int | None = None,
    rows_per_strip: int | None = None,
    bits: int = 8,
    compression: int = 8,
) -> bytes:
    """A little-endian grey TIFF whose every tile or strip is the same `chunk`.

    With `tile`, the image is tiled `tile`×`tile`; else stored in strips of
    `rows_per_strip` rows.  All offsets point at the one `chunk` (deflate
    when `compression` is 8), so the file stays tiny whatever it declares.
    """
    if tile:
        n_chunks = math.ceil(width / tile) * math.ceil(height / tile)
    else:
        rows_per_strip = rows_per_strip or height
        n_chunks = math.ceil(height / rows_per_strip)
    data_at = 8
    chunk = chunk + b"\0" * (len(chunk) % 2)
    tags: list[tuple[int, int, list[int]]] = [
        (256, _LONG, [width]),
        (257, _LONG, [height]),
        (258, _SHORT, [bits]),
        (259, _SHORT, [compression]),
        (262, _SHORT, [1]),  # min-is-black
        (277, _SHORT, [1]),
        (284, _SHORT, [1]),
    ]
    if tile:
        tags += [
            (322, _LONG, [tile]),
            (323, _LONG, [tile]),
            (324, _LONG, [data_at] * n_chunks),
            (325, _LONG, [len(chunk)] * n_chunks),
        ]
    else:
        tags += [
            (273, _LONG, [data_at] * n_chunks),
            (278, _LONG, [rows_per_strip]),
            (279, _LONG, [len(chunk)] * n_chunks),
        ]
    tags.sort()
    ifd_at = data_at + len(chunk)
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for code, kind, values in tags:
        fmt = "H" if kind == _SHORT else "I"
        packed = struct.pack(f"<{len(values)}{fmt}", *values)
        if len(packed) <= 4:
            entries.append(struct.pack("<HHI", code, kind, len(values)) + packed.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", code, kind, len(values), extra_at + len(extra)))
            extra += packed
    ifd = struct.pack("<H", len(tags)) + b"".join(entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + chunk + ifd + extra


def dot_tile(side: int, spacing: int = 16, dtype=np.uint8) -> np.ndarray:
    """A dark tile with one bright 3×3 dot every `spacing` pixels."""
    tile = np.full((side, side), 10, dtype)
    for dy in range(3):
        for dx in range(3):
            tile[spacing // 2 + dy :: spacing, spacing // 2 + dx :: spacing] = 200
    return tile


def tiled_bomb(side: int, tile: int = 1024, *, dots: bool = False) -> bytes:
    """A `side`² uint8 TIFF whose tiles all share one deflated tile."""
    pixels = dot_tile(tile) if dots else np.zeros((tile, tile), np.uint8)
    return tiff_bytes(side, side, zlib.compress(pixels.tobytes(), 9), tile=tile)


def strip_bomb(side: int) -> bytes:
    """A `side`² uint8 TIFF of one-row strips that all share one deflated row."""
    row = zlib.compress(bytes(side), 9)
    return tiff_bytes(side, side, row, rows_per_strip=1)


def big_valid_tiff(path: Path, side: int, tile: int = 1024) -> Path:
    """A real `side`² tiled TIFF (each tile stored), written tile by tile."""
    pattern = dot_tile(tile)
    n = math.ceil(side / tile) ** 2
    tifffile.imwrite(
        path,
        (pattern for _ in range(n)),
        shape=(side, side),
        dtype=np.uint8,
        tile=(tile, tile),
        compression="zlib",
    )
    return path


# --------------------------------------------------------------------------
# PNG, streamed row by row
# --------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG of a (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) uint8/uint16 array."""
    image = np.asarray(image)
    colour = {2: 0, 3: 4, 4: 2}.get(image.ndim, None) if image.ndim == 2 else {
        2: 4, 3: 2, 4: 6}[image.shape[2]]
    height, width = image.shape[:2]
    depth = 16 if image.dtype == np.uint16 else 8
    raw = image.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1)
    rows = b"".join(b"\0" + row.tobytes() for row in raw)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows, 9)) + _chunk(b"IEND", b""))


def big_png(path: Path, side: int) -> Path:
    """A `side`² 16-bit grey PNG, mostly constant with rows of dots, streamed."""
    plain = b"\0" + np.full(side, 100, ">u2").tobytes()
    dotted_row = np.full(side, 100, ">u2")
    dotted_row[::50] = 3000
    dotted = b"\0" + dotted_row.tobytes()
    packer = zlib.compressobj(9)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)))
        for y in range(side):
            data = packer.compress(dotted if y % 50 == 0 else plain)
            if data:
                out.write(_chunk(b"IDAT", data))
        out.write(_chunk(b"IDAT", packer.flush()))
        out.write(_chunk(b"IEND", b""))
    return path


def jpeg_bomb(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header (SOF0) declares `width`×`height`."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(dot_tile(16)).convert("RGB").save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    at = 2
    while data[at + 1] != 0xC0:  # walk the segments to the frame header
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# --------------------------------------------------------------------------
# Zips
# --------------------------------------------------------------------------


def small_tiff(seed: int, side: int = 64) -> bytes:
    """A small, valid, segmentable uint16 TIFF: bright discs on noise."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 5, (side, side))
    yy, xx = np.mgrid[:side, :side]
    for cy, cx in rng.integers(10, side - 10, (4, 2)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] += 400
    buf = io.BytesIO()
    tifffile.imwrite(buf, image.astype(np.uint16))
    return buf.getvalue()


def zip_bytes(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of `members` in order; duplicate names are kept (both copies)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": on purpose
        with zipfile.ZipFile(buf, "w", method) as archive:
            for name, data in members:
                info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
                info.compress_type = method
                archive.writestr(info, data)
    return buf.getvalue()


def _headers(data: bytes, name: str) -> tuple[int, int]:
    """Offsets of the local header and the central directory entry of `name`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
        local = info.header_offset
        at = archive.start_dir
    while data[at : at + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[at + 28 : at + 34])
        if data[at + 46 : at + 46 + name_len].decode("utf-8", "replace") == name:
            return local, at
        at += 46 + name_len + extra_len + comment_len
    raise KeyError(name)


def patch_member(data: bytes, name: str, *, flag_bits: int = 0, method: int | None = None,
                 declared_size: int | None = None) -> bytes:
    """Rewrite `name`'s headers: add flag bits, change the method or declared size."""
    out = bytearray(data)
    local, central = _headers(data, name)
    for at, flag_at, method_at, size_at in ((local, 6, 8, 22), (central, 8, 10, 24)):
        flags = struct.unpack("<H", out[at + flag_at : at + flag_at + 2])[0]
        out[at + flag_at : at + flag_at + 2] = struct.pack("<H", flags | flag_bits)
        if method is not None:
            out[at + method_at : at + method_at + 2] = struct.pack("<H", method)
        if declared_size is not None:
            out[at + size_at : at + size_at + 4] = struct.pack("<I", declared_size)
    return bytes(out)


def damage_member(data: bytes, name: str) -> bytes:
    """Make `name`'s deflate stream invalid (first block of a reserved type)."""
    out = bytearray(data)
    local, _ = _headers(data, name)
    name_len, extra_len = struct.unpack("<HH", out[local + 26 : local + 30])
    start = local + 30 + name_len + extra_len
    out[start] = 0xFF  # BFINAL=1, BTYPE=11: "invalid block type"
    return bytes(out)


def zip_bomb(path: Path, size: int = 1 << 30, name: str = "zeros.tif") -> Path:
    """A zip of one member of `size` zero bytes (about size/1000 on disk)."""
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(name, "w", force_zip64=True) as dst:
            for _ in range(size // len(block)):
                dst.write(block)
    return path


HOSTILE_NAMES = [
    "![x](http://example.invalid/x.png).tif",
    "`code` span.tif",
    "<img src=x onerror=alert(1)>.tif",
    "=HYPERLINK(\"http://example.invalid\").tif",
    "+cmd.tif",
    "-2+3.tif",
    "@SUM(A1).tif",
]
UNSAFE_NAMES = [
    "../../escape.tif",
    "/etc/absolute.tif",
    "C:\\Windows\\drive.tif",
    "ctrl\x1b[31m\x07.tif",
    "a//b/./c.tif",
]


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

BOMBS = ("tiled_100k", "strips_100k", "dots_30k", "dots_16k", "png16_13k", "jpeg_60k")


def build(folder: Path) -> dict[str, Path]:
    """Write every hostile case into `folder`; return the paths by case name."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(case: str, name: str, data: bytes) -> None:
        files[case] = folder / name
        files[case].write_bytes(data)

    # bombs: tiny files declaring huge images
    put("tiled_100k", "tiled_100k.tif", tiled_bomb(100_000))
    put("strips_100k", "strips_100k.tif", strip_bomb(100_000))
    put("dots_30k", "dots_30k.tif", tiled_bomb(30_000, 512, dots=True))
    put("dots_16k", "dots_16k.tif", tiled_bomb(16_000, 512, dots=True))
    files["png16_13k"] = big_png(folder / "png16_13k.png", 13_000)
    put("jpeg_60k", "jpeg_60k.jpg", jpeg_bomb(60_000, 60_000))
    # a tile declared far larger than its 64×64 image
    put("huge_tile", "huge_tile.tif",
        tiff_bytes(64, 64, zlib.compress(bytes(64 * 64)), tile=65_536 - 16))
    files["valid_20k"] = big_valid_tiff(folder / "valid_20k.tif", 20_000)

    # correctness
    rgb16 = np.zeros((40, 50, 3), np.uint16)
    rgb16[..., 0] = np.arange(50) * 1000 + 7
    rgb16[..., 1] = (np.arange(40) * 1500 + 3)[:, None]
    rgb16[..., 2] = 65535
    put("png16_rgb", "rgb16.png", png_bytes(rgb16))
    put("png16_rgba", "rgba16.png", png_bytes(np.dstack([rgb16, np.full((40, 50), 9, np.uint16)])))
    put("png16_grey_alpha", "greyalpha16.png",
        png_bytes(np.dstack([rgb16[..., 0], np.full((40, 50), 9, np.uint16)])))
    with tifffile.TiffWriter(folder / "sizes.tif") as tif:
        tif.write(dot_tile(512, dtype=np.uint16), compression="zlib")
        tif.write(np.ones((256, 256), np.uint16), compression="zlib")
        tif.write(np.ones((64, 64), np.uint16), compression="zlib")
    files["mixed_sizes"] = folder / "sizes.tif"

    # absurd pixel sizes
    plane = small_tiff_array()
    for case, md in (
        ("ome_1e308", {"PhysicalSizeX": 1e308}),
        ("ome_nan", {"PhysicalSizeX": float("nan")}),
        ("ome_negative", {"PhysicalSizeX": -0.5}),
    ):
        files[case] = folder / f"{case}.ome.tif"
        tifffile.imwrite(files[case], plane, ome=True, metadata={"axes": "YX", **md})
    files["imagej_1e9"] = folder / "imagej_1e9.tif"
    tifffile.imwrite(files["imagej_1e9"], plane, imagej=True,
                     resolution=((1, 10**9), (1, 10**9)), metadata={"unit": "um"})

    # empty and truncated
    put("empty", "empty.tif", b"")
    whole = small_tiff(1)
    put("truncated", "truncated.tif", whole[: len(whole) // 2])

    # zips
    good = [(f"exp/good_{i:02d}.tif", small_tiff(i)) for i in range(3)]
    damaged = damage_member(zip_bytes(good + [("exp/damaged.tif", small_tiff(9))]),
                            "exp/damaged.tif")
    put("zip_damaged", "damaged.zip", damaged)
    put("zip_encrypted", "encrypted.zip",
        patch_member(zip_bytes(good + [("exp/secret.tif", small_tiff(8))]), "exp/secret.tif",
                     flag_bits=0x1))
    put("zip_deflate64", "deflate64.zip",
        patch_member(zip_bytes(good + [("exp/odd.tif", small_tiff(7))]), "exp/odd.tif",
                     method=9))
    put("zip_lying_size", "lying.zip",
        patch_member(zip_bytes(good + [("exp/liar.tif", small_tiff(6, 256))]), "exp/liar.tif",
                     declared_size=1000))
    put("zip_duplicates", "duplicates.zip",
        zip_bytes([("exp/same.tif", small_tiff(1)), ("exp/same.tif", small_tiff(2)),
                   ("exp/SAME.tif", small_tiff(3))]))
    put("zip_unsafe_names", "unsafe.zip",
        zip_bytes([(n, small_tiff(i)) for i, n in enumerate(UNSAFE_NAMES)]))
    put("zip_markup_names", "markup.zip",
        zip_bytes([(n, small_tiff(i)) for i, n in enumerate(HOSTILE_NAMES)]))
    put("zip_hidden", "hidden.zip",
        zip_bytes(good + [("__MACOSX/exp/._good_00.tif", b"\0" * 10),
                          ("exp/.DS_Store", b"\0"), ("exp/Thumbs.db", b"\0"),
                          ("exp/notes.txt", b"hello"), ("exp/inner.zip", zip_bytes(good))]))
    put("not_a_zip", "not_a_zip.zip", b"PK\x03\x04 but not really a zip")
    files["zip_bomb"] = zip_bomb(folder / "bomb.zip")
    return files


def small_tiff_array() -> np.ndarray:
    return tifffile.imread(io.BytesIO(small_tiff(0)))


def zip_with_every_fault(good: list[tuple[str, bytes]], huge: bytes) -> bytes:
    """A zip of the `good` images with, in the middle, a damaged member, an encrypted one and the valid
    but `huge` TIFF, and at the end a zip bomb (256 MiB of zeros)."""
    members = [*good[:10], ("exp/damaged.tif", small_tiff(90)), ("exp/secret.tif", small_tiff(91)),
               ("exp/huge_20k.tif", huge), *good[10:]]
    data = damage_member(zip_bytes(members), "exp/damaged.tif")
    data = patch_member(data, "exp/secret.tif", flag_bits=1)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("exp/zeros.tif", "w", force_zip64=True) as dst:
            for _ in range(256):
                dst.write(bytes(1 << 20))
    return buf.getvalue()
