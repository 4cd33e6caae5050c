"""Find and stage batch inputs: files, folders, uploads and the members of zips.

The single place where the command line (paths), the Batch page (uploaded
files, possibly with folder names, and uploaded ``.zip`` files) and zips turn
into the images a batch runs on.  It works in two steps:

1. :func:`plan_paths` / :func:`plan_uploads` look at names and zip central
   directories only: they sort every file into images to segment and files
   skipped with a reason, and give every image a safe name
   (:func:`safe_name`) that is unique in the batch.  Nothing is extracted.
2. :func:`stage` writes what must be on disk (uploads, zip members) into one
   staging folder under numbered names, streaming, and returns the
   :class:`BatchInput` list for :func:`segmentation.batch.run_batch`.

A zip member is checked against :class:`ZipLimits` (size, compression ratio,
total size, number of members) from the central directory before anything is
extracted.  Whatever goes wrong with one member (encrypted, damaged, an
unsupported compression, a size that lies) skips that member only, with its
reason; a zip that cannot be read at all becomes one of the plan's
``problems``.  No name found in a zip or an upload is ever used as a path.
"""

from __future__ import annotations

import io
import os
import re
import struct
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from .io import IMAGE_SUFFIXES, format_bytes, is_hidden, is_image_name

__all__ = [
    "SKIP_REASONS",
    "BatchInput",
    "InputPlan",
    "Planned",
    "Renamed",
    "Skipped",
    "ZipLimits",
    "copy_limited",
    "plan_paths",
    "plan_uploads",
    "safe_name",
    "stage",
]

_IMAGES = "an image file (" + ", ".join(IMAGE_SUFFIXES) + ")"

# Reasons a file is skipped: a short code for grouping, and the words shown.
SKIP_REASONS = {
    "hidden": "a hidden or system file (such as .DS_Store, ._name, __MACOSX, Thumbs.db)",
    "not_image": f"not {_IMAGES}",
    "nested_zip": "a zip inside a zip is not opened: unzip it and add its images",
    "encrypted": "encrypted (password-protected) in the zip: zip it again without a password",
    "too_large": "too large",
    "damaged": "cannot be extracted from the zip",
}


@dataclass(frozen=True)
class ZipLimits:
    """Caps on what a zip may unpack, checked from its central directory.

    Attributes
    ----------
    max_member_bytes : int
        Largest uncompressed member (2 GB).
    max_ratio : float
        Largest compression ratio (uncompressed / compressed size) of a member
        larger than `ratio_from_bytes`; more is the mark of a zip bomb.
    ratio_from_bytes : int
        Members up to this size are never refused for their ratio (a small,
        nearly empty image may well compress 1000 times).
    max_total_bytes : int
        Largest sum of the uncompressed images of all zips of one batch.
    max_members : int
        Most entries a zip may have (counted from its end record, before its
        directory is read).
    """

    max_member_bytes: int = 2_000_000_000
    max_ratio: float = 200.0
    ratio_from_bytes: int = 10_000_000
    max_total_bytes: int = 20_000_000_000
    max_members: int = 100_000


@dataclass(frozen=True)
class BatchInput:
    """One image to process: its name as the user sees it and where its bytes are.

    `name` is a safe relative POSIX path such as ``"exp1/sub/img.tif"`` (see
    :func:`safe_name`), unique in the batch; the results zip uses it too.
    `source` is a path on disk or the file's bytes.  `original` is the name
    as found when it had to be changed (unsafe characters, a duplicate),
    else ``""``.
    """

    name: str
    source: Path | bytes
    original: str = ""


@dataclass(frozen=True)
class Skipped:
    """A file that is not segmented, and why.

    `name` is safe to use as text (zip members are shown as
    ``"upload.zip/sub/notes.txt"``); `kind` is one of the keys of
    :data:`SKIP_REASONS` (for grouping, e.g. to fold away hidden files);
    `reason` says it in words.
    """

    name: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Renamed:
    """An image kept under another name than the one it was found with."""

    original: str
    name: str
    reason: str


@dataclass(frozen=True)
class Planned:
    """An image found by a plan and not staged yet.

    Exactly one of `path` (a file on disk, used in place), `upload` (index
    into ``InputPlan.uploads``) or `archive` + `member` (a zip member) says
    where its bytes are.
    """

    name: str
    original: str = ""
    unsafe: bool = False  # the original name had to be made safe
    path: Path | None = None
    upload: int | None = None
    archive: int | None = None
    member: zipfile.ZipInfo | None = None
    renamed: bool = False  # `name` differs from the original (set by the plan)


@dataclass
class InputPlan:
    """Everything a batch was given, sorted: images, skipped files, problems.

    `uploads` holds the uploaded files (objects with ``name`` and
    ``getvalue()``, or ``(name, bytes)`` pairs) and `archives` the zips
    (a path, or an index into `uploads`) that `images` refer to.
    """

    images: list[Planned] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    renamed: list[Renamed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    uploads: list[Any] = field(default_factory=list)
    archives: list[Path | int] = field(default_factory=list)
    archive_names: list[str] = field(default_factory=list)

    def folders(self) -> list[str]:
        """The folders the images are in, as shown to the user."""
        return sorted({str(PurePosixPath(p.name).parent) for p in self.images} - {"."})

    def with_bytes(self) -> InputPlan:
        """The same plan holding the uploads' bytes, not the upload objects.

        Call it where the upload objects are still valid (the page's script
        thread) before staging in another thread.
        """
        uploads = [(_upload_name(u), _upload_bytes(u)) for u in self.uploads]
        return replace(self, uploads=uploads)


# --------------------------------------------------------------------------
# Safe names
# --------------------------------------------------------------------------

# Characters no file name should hold: control and format characters (bidi
# overrides can disguise a suffix), line and paragraph separators, lone
# surrogates from undecodable names, and what Windows refuses in a name.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_WINDOWS_UNSAFE = frozenset('<>:"|?*')
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_PART = 200  # characters per folder or file name


def safe_name(name: str) -> str:
    """Turn a name found in an upload or a zip into a safe relative POSIX path.

    Backslashes become ``/``; a drive letter (``C:``) and leading ``/`` go;
    the parts ``.``, ``..`` and empty ones go (they could point outside the
    folder); control characters and ``<>:"|?*`` become ``_``; surrounding
    spaces and trailing dots of each part go (Windows drops them);
    Windows device names (``CON``, ``NUL``...) get a leading ``_``; a part
    longer than 200 characters is shortened, keeping its suffix.  A name
    with nothing left becomes ``"unnamed"``.  The result never starts with
    ``/``, holds no ``..``, drive letter, backslash or control character,
    and ``safe_name(safe_name(x)) == safe_name(x)``.

    Parameters
    ----------
    name : str
        Relative path as found (zip member, uploaded file with its folder).

    Returns
    -------
    str

    Examples
    --------
    >>> safe_name("../../etc/passwd")
    'etc/passwd'
    >>> safe_name("C:\\\\data\\\\day1\\\\img.tif")
    'data/day1/img.tif'
    >>> safe_name("a\\x1b[31m.tif")
    'a_[31m.tif'
    """
    text = str(name).replace("\\", "/")
    text = _DRIVE.sub("", text)
    parts = []
    for part in text.split("/"):
        part = "".join(
            "_"
            if unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch in _WINDOWS_UNSAFE
            else ch
            for ch in part
        )
        part = part.strip().rstrip(". ")
        if not part:
            continue  # "", ".", "..", "...": no name, or a way out of the folder
        if len(part) > _MAX_PART:
            suffix = PurePosixPath(part).suffix
            suffix = suffix if 1 < len(suffix) <= 16 else ""
            part = part[: _MAX_PART - 1 - len(suffix)].rstrip(". ") + "~" + suffix
        if part.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
            part = "_" + part
        parts.append(part)
    return "/".join(parts) or "unnamed"


def _changed(found: str, name: str) -> bool:
    """True when making `found` safe changed more than its slashes."""
    return name != found.replace("\\", "/")


def _unique(name: str, used: set[str]) -> str:
    """`name`, or ``"stem (2).suffix"`` etc. when it is taken (ignoring case)."""
    if name.lower() not in used:
        used.add(name.lower())
        return name
    path = PurePosixPath(name)
    suffixes = "".join(path.suffixes[-2:]) if path.name.lower().endswith(
        (".ome.tif", ".ome.tiff")
    ) else path.suffix
    stem = name[: len(name) - len(suffixes)]
    n = 2
    while f"{stem} ({n}){suffixes}".lower() in used:
        n += 1
    unique = f"{stem} ({n}){suffixes}"
    used.add(unique.lower())
    return unique


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------


class _Planner:
    """Collects images and skipped files; names stay unique across the plan."""

    def __init__(self, limits: ZipLimits | None) -> None:
        self.limits = limits or ZipLimits()
        self.plan = InputPlan()
        self.zip_bytes = 0  # uncompressed images planned from zips

    def add_file(self, found: str, *, path: Path | None = None, upload: int | None = None) -> None:
        """A file on disk or an upload: an image, a zip to open, or skipped."""
        name = safe_name(found)
        if is_hidden(name):
            self.skip(name, "hidden")
        elif name.lower().endswith(".zip"):
            source = path if path is not None else upload
            assert source is not None
            self.add_zip(name, source)
        elif is_image_name(name):
            self.plan.images.append(
                Planned(name, found, _changed(found, name), path=path, upload=upload)
            )
        else:
            self.skip(name, "not_image")

    def add_zip(self, zip_name: str, source: Path | int) -> None:
        """List a zip's members; no member is extracted here."""
        try:
            with _open_source(self.plan, source) as fh:
                problem = _too_many_members(fh, zip_name, self.limits)
                if problem:
                    self.plan.problems.append(problem)
                    return
                with zipfile.ZipFile(fh) as archive:
                    members = archive.infolist()
        except Exception as exc:  # noqa: BLE001 - any unreadable zip is one problem
            self.plan.problems.append(
                f"Cannot read '{zip_name}': it is not a valid zip file, or it is "
                f"damaged ({type(exc).__name__}). Zip the folder again and use the "
                "new zip, or use the folder itself."
            )
            return
        if len(members) > self.limits.max_members:
            self.plan.problems.append(_too_many_text(zip_name, len(members), self.limits))
            return
        index = len(self.plan.archives)
        self.plan.archives.append(source)
        self.plan.archive_names.append(zip_name)
        for info in members:
            if info.is_dir():
                continue
            self.add_member(zip_name, index, info)

    def add_member(self, zip_name: str, index: int, info: zipfile.ZipInfo) -> None:
        found = safe_name(info.filename)
        shown = f"{zip_name}/{found}"
        # a zip stands for its contents, in the folder where it is
        folder = PurePosixPath(zip_name).parent
        name = found if str(folder) == "." else f"{folder}/{found}"
        if is_hidden(name):
            return self.skip(shown, "hidden")
        if name.lower().endswith(".zip"):
            return self.skip(shown, "nested_zip")
        if not is_image_name(name):
            return self.skip(shown, "not_image")
        if info.flag_bits & 0x1:
            return self.skip(shown, "encrypted")
        limits = self.limits
        size, packed = info.file_size, info.compress_size
        if size > limits.max_member_bytes:
            return self.skip(
                shown,
                "too_large",
                f"too large: {format_bytes(size)} uncompressed, above the limit of "
                f"{format_bytes(limits.max_member_bytes)} for one file in a zip",
            )
        if size > limits.ratio_from_bytes and size > limits.max_ratio * max(packed, 1):
            return self.skip(
                shown,
                "too_large",
                f"too large: it unpacks from {format_bytes(packed)} to {format_bytes(size)}, "
                f"more than {limits.max_ratio:g} times its size, as a zip bomb "
                "does. Add the image itself instead of a zip",
            )
        if self.zip_bytes + size > limits.max_total_bytes:
            return self.skip(
                shown,
                "too_large",
                f"too large: with it, the images in the zips would unpack to more "
                f"than {format_bytes(limits.max_total_bytes)} in all. Run the batch in "
                "several parts",
            )
        self.zip_bytes += size
        self.plan.images.append(
            Planned(name, info.filename, _changed(info.filename, found), archive=index, member=info)
        )

    def skip(self, name: str, kind: str, reason: str | None = None) -> None:
        self.plan.skipped.append(Skipped(name, kind, reason or SKIP_REASONS[kind]))

    def finish(self, sort: bool) -> InputPlan:
        plan = self.plan
        if sort:
            plan.images.sort(key=lambda p: p.name.lower())
        used: set[str] = set()
        images = []
        for item in plan.images:
            name = _unique(item.name, used)
            reasons = []
            if item.unsafe:
                reasons.append("its name held characters or parts that are not safe in a file name")
            if name != item.name:
                reasons.append(f"another file is also called '{item.name}'")
            if reasons:
                plan.renamed.append(Renamed(item.original, name, "; ".join(reasons)))
            images.append(replace(item, name=name, renamed=bool(reasons)))
        plan.images = images
        plan.skipped.sort(key=lambda s: s.name.lower())
        return plan


def plan_paths(
    paths: Iterable[str | os.PathLike], *, limits: ZipLimits | None = None
) -> InputPlan:
    """Plan a batch from files and folders on disk (the command line).

    Parameters
    ----------
    paths : iterable of str or path-like
        Files are used as given, whatever their name (reading says what is
        wrong); a ``.zip`` file is opened and its images used.  Folders are
        searched recursively (symbolic links to folders are not followed);
        their images are named by their path from the folder's parent, so the
        folder's own name is kept: ``exp1/day1/img.tif``.  Hidden and system
        files (:func:`segmentation.io.is_hidden`) and other files inside
        folders are listed as skipped.
    limits : ZipLimits, optional

    Returns
    -------
    InputPlan
        Images in the order given (sorted inside each folder).

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    """
    planner = _Planner(limits)
    for given in paths:
        path = Path(given)
        if path.is_dir():
            top = path.resolve().name or "folder"
            for root, dirs, files in os.walk(path):
                rel_root = PurePosixPath(top, *Path(root).relative_to(path).parts)
                hidden_dirs = sorted(d for d in dirs if is_hidden(d))
                for d in hidden_dirs:
                    planner.skip(safe_name(str(rel_root / d)) + "/", "hidden")
                dirs[:] = sorted(d for d in dirs if not is_hidden(d))
                for file in sorted(files):
                    planner.add_file(str(rel_root / file), path=Path(root) / file)
        elif path.is_file():
            if path.suffix.lower() == ".zip":
                planner.add_zip(safe_name(path.name), path)
            else:
                # a file given by name is used even if its name looks hidden
                name = safe_name(path.name)
                planner.plan.images.append(
                    Planned(name, path.name, _changed(path.name, name), path=path)
                )
        else:
            raise FileNotFoundError(f"no such file or folder: {given}")
    return planner.finish(sort=False)


def plan_uploads(files: Sequence[Any], *, limits: ZipLimits | None = None) -> InputPlan:
    """Plan a batch from uploaded files (the Batch page).

    Parameters
    ----------
    files : sequence
        Uploaded files: objects with a ``name`` (possibly with folder names,
        as a folder upload gives them) and ``getvalue()`` (Streamlit's
        ``UploadedFile``), or ``(name, bytes)`` pairs.  ``.zip`` files are
        opened and their images used, named by their path inside the zip.
    limits : ZipLimits, optional

    Returns
    -------
    InputPlan
        Images sorted by name, ignoring case; a zip that cannot be read is
        one of its ``problems``.  The plan keeps `files` (not copies) until
        :meth:`InputPlan.with_bytes`.
    """
    planner = _Planner(limits)
    planner.plan.uploads = list(files)
    for index, upload in enumerate(planner.plan.uploads):
        planner.add_file(_upload_name(upload), upload=index)
    return planner.finish(sort=True)


# --------------------------------------------------------------------------
# Staging
# --------------------------------------------------------------------------


class _TooManyBytes(Exception):
    """A member gave more bytes than its header declared."""


def stage(plan: InputPlan, folder: str | os.PathLike) -> tuple[list[BatchInput], list[Skipped]]:
    """Write the plan's uploads and zip members to `folder`, one file at a time.

    Files on disk are used in place.  Uploads and zip members are written
    as ``000000.tif``, ``000001.png``, ... (never under the name they came
    with), streamed in 1 MB pieces; a member that gives more bytes than its
    header declared is stopped there.  Any error while extracting one member
    (damaged data, an unsupported compression, a password, a full disk)
    skips that member only, with the reason.

    Parameters
    ----------
    plan : InputPlan
    folder : path
        Staging folder (created if needed); nothing is written elsewhere.

    Returns
    -------
    inputs : list of BatchInput
        In the plan's order, named as in the plan.
    skipped : list of Skipped
        Members that could not be extracted.

    Raises
    ------
    OSError
        If `folder` cannot be created.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inputs: list[BatchInput] = []
    skipped: list[Skipped] = []
    archives: dict[int, zipfile.ZipFile] = {}
    handles: list[BinaryIO] = []
    try:
        for number, item in enumerate(plan.images):
            original = item.original if item.renamed else ""
            if item.path is not None:
                inputs.append(BatchInput(item.name, item.path, original))
                continue
            target = folder / f"{number:06d}{PurePosixPath(item.name).suffix.lower()}"
            created = False
            try:
                # "x": never over an existing file, nor through a symbolic link
                with open(target, "xb") as dst:
                    created = True
                    if item.upload is not None:
                        dst.write(_upload_bytes(plan.uploads[item.upload]))
                    else:
                        assert item.archive is not None and item.member is not None
                        archive = archives.get(item.archive)
                        if archive is None:
                            handles.append(_open_source(plan, plan.archives[item.archive]))
                            archive = archives[item.archive] = zipfile.ZipFile(handles[-1])
                        with archive.open(item.member) as src:
                            copy_limited(src, dst, item.member.file_size)
            except Exception as exc:  # noqa: BLE001 - one member never stops the rest
                if created:
                    target.unlink(missing_ok=True)
                if item.archive is None or item.member is None:
                    shown = item.name
                else:  # as the plan shows zip members: the zip, then the member
                    shown = f"{plan.archive_names[item.archive]}/{safe_name(item.member.filename)}"
                skipped.append(_extract_failure(shown, exc))
                continue
            inputs.append(BatchInput(item.name, target, original))
    finally:
        for archive in archives.values():
            archive.close()
        for handle in handles:
            handle.close()
    return inputs, skipped


def copy_limited(src: BinaryIO, dst: BinaryIO, limit: int, chunk: int = 1 << 20) -> int:
    """Copy `src` to `dst` in pieces, stopping when more than `limit` bytes come.

    Returns the number of bytes copied; raises an exception if `src` gives
    more than `limit` (nothing past `limit` is written).
    """
    copied = 0
    while True:
        piece = src.read(min(chunk, limit - copied + 1))
        if not piece:
            return copied
        copied += len(piece)
        if copied > limit:
            raise _TooManyBytes(f"it gives more than the {limit:,} bytes its header declares")
        dst.write(piece)


def _extract_failure(shown: str, exc: BaseException) -> Skipped:
    detail = f"{type(exc).__name__}: {str(exc)[:160]}"
    if isinstance(exc, RuntimeError) and re.search("encrypt|password", str(exc), re.I):
        return Skipped(shown, "encrypted", SKIP_REASONS["encrypted"])
    if isinstance(exc, NotImplementedError):
        return Skipped(
            shown,
            "damaged",
            "compressed with a method this app cannot unpack "
            f"({detail}): zip it again with the standard (deflate) compression",
        )
    if isinstance(exc, MemoryError):
        return Skipped(shown, "too_large", "too large: not enough memory to unpack it")
    if isinstance(exc, OSError) and not isinstance(exc, (zipfile.BadZipFile, EOFError)):
        return Skipped(
            shown,
            "damaged",
            f"could not be written to the temporary folder ({exc.strerror or detail}): "
            "free some disk space and run it again",
        )
    return Skipped(
        shown,
        "damaged",
        f"damaged: it cannot be extracted from the zip ({detail}). Zip the "
        "folder again, or add the image itself",
    )


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _upload_name(upload: Any) -> str:
    if isinstance(upload, tuple):
        return str(upload[0])
    return str(getattr(upload, "name", "") or "unnamed")


def _upload_bytes(upload: Any) -> bytes:
    if isinstance(upload, tuple):
        return bytes(upload[1])
    return upload.getvalue()


def _open_source(plan: InputPlan, source: Path | int) -> BinaryIO:
    if isinstance(source, Path):
        return open(source, "rb")
    return io.BytesIO(_upload_bytes(plan.uploads[source]))


_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def _too_many_members(fh: BinaryIO, zip_name: str, limits: ZipLimits) -> str:
    """A problem when the zip's end record declares too many entries, else ''.

    Read before :class:`zipfile.ZipFile`, which builds an object for every
    entry of the central directory; a declared directory too large for
    `max_members` entries counts as too many too.
    """
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    start = max(0, size - 22 - 65535)
    fh.seek(start)
    tail = fh.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return ""  # zipfile will say what is wrong
    (_, _, _, _, entries, cd_size, _, _) = struct.unpack("<4s4H2LH", tail[at : at + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        locator = tail[at - 20 : at] if at >= 20 else b""
        if locator[:4] == _EOCD64_LOCATOR:
            offset = struct.unpack("<Q", locator[8:16])[0]
            fh.seek(offset)
            record = fh.read(56)
            if record[:4] == _EOCD64 and len(record) == 56:
                entries, cd_size = struct.unpack("<QQ", record[32:48])
    # a central directory entry is 46 bytes plus its name and extras
    if entries > limits.max_members or cd_size > limits.max_members * 1024:
        return _too_many_text(zip_name, max(entries, cd_size // 1024), limits)
    return ""


def _too_many_text(zip_name: str, n: int, limits: ZipLimits) -> str:
    return (
        f"Cannot use '{zip_name}': it holds {n:,} files or more, above the limit "
        f"of {limits.max_members:,} for one zip. Split it into several zips, or "
        "run the batch in several parts."
    )
