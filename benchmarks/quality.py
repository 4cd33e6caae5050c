"""F1 at IoU 0.5 against ground truth: course defaults vs suggested settings.

    python benchmarks/quality.py            # every ground-truth set in ../shared/data
    python benchmarks/quality.py --quick    # one image per set, cropped to 256 px (a few seconds)
    python benchmarks/quality.py --sets dsb2018_dev --per-image

For each set it prints the mean F1 over its images and the worst image, for
``Params()`` (the course's defaults) and for ``suggest(image).params``, and the
time :func:`segmentation.suggest` took (median and slowest, per image, plus one
2048×2048 16-bit synthetic image).  dsb2018_dev is also reported in two fixed
halves (names sorted, first 30 / last 30): suggest() was developed on the first
half and checked on the second.

Matching: a predicted and a true object match when their IoU is at least 0.5;
pairs are taken one-to-one in order of decreasing IoU (above 0.5 a match is
unique anyway).  F1 = 2TP / (2TP + FP + FN); an image with no object in either
counts as F1 = 1.

Sparse ground truth (BBBC007: 6-8 annotated nuclei per image): only the
annotated nuclei are scored.  TP = annotated nuclei matched; FN = annotated
nuclei not matched; FP = predicted objects that are not matched but cover at
least 10 % of the pixels of some annotated nucleus (a half of a nucleus cut in
two, or a clump that swallowed it).  Predicted objects elsewhere are unknown,
not false.  A neighbour that only grazes an annotated nucleus is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import nuclei_image  # noqa: E402

from segmentation import Params, load_plane, segment  # noqa: E402
from segmentation.suggest import suggest  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IOU = 0.5
SPARSE_COVER = 0.10  # an unmatched prediction is an FP when it covers this share of an annotated nucleus


@dataclass(frozen=True)
class GroundTruthSet:
    """Where one set's images and labels are, and how to score it."""

    name: str
    label: str
    masks: str  # folder with labels of the same stem as the image
    sparse: bool = False


SETS = (
    GroundTruthSet("stardist_pkg", "StarDist sample", "masks"),
    GroundTruthSet("bobiac_course", "BoBiAC U2OS", "masks"),
    GroundTruthSet("nih3t3_hoechst", "NIH3T3 (derived instances)", "masks_instances_derived"),
    GroundTruthSet("bbbc007_kc167_dna", "BBBC007 (sparse)", "masks_sparse", sparse=True),
    GroundTruthSet("dsb2018_dev", "dsb2018_dev", "masks"),
)


# --- ground truth ---------------------------------------------------------------


def read_labels(path: Path) -> np.ndarray:
    """Instance labels (0 = background) from a TIFF or PNG."""
    if path.suffix.lower() in (".tif", ".tiff"):
        labels = tifffile.imread(path)
    else:
        labels = np.asarray(Image.open(path))
    if labels.ndim == 3:  # an RGB(A) PNG of labels: the first channel holds them
        labels = labels[..., 0]
    return labels.astype(np.int64)


def image_pairs(gt: GroundTruthSet, root: Path = DATA) -> list[tuple[Path, Path]]:
    """(image, labels) files of a set; images without labels are left out."""
    folder = root / gt.name
    pairs = []
    for image in sorted((folder / "images").glob("*")):
        found = sorted((folder / gt.masks).glob(image.stem + ".*"))
        if found:
            pairs.append((image, found[0]))
    return pairs


# --- matching -------------------------------------------------------------------


def _overlaps(pred: np.ndarray, true: np.ndarray):
    """Pixel counts of every (true, predicted) pair that overlaps, and each object's area."""
    pred = np.asarray(pred, dtype=np.int64)
    true = np.asarray(true, dtype=np.int64)
    both = (pred > 0) & (true > 0)
    width = int(pred.max()) + 1
    pair, inter = np.unique(true[both] * width + pred[both], return_counts=True)
    t, p = np.divmod(pair, width)
    area_t = np.bincount(true.ravel())
    area_p = np.bincount(pred.ravel(), minlength=width)
    return t, p, inter, area_t, area_p


def _match(t, p, inter, area_t, area_p) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs with IoU >= 0.5, greedy by decreasing IoU: matched true and predicted ids."""
    iou = inter / (area_t[t] + area_p[p] - inter)
    ok = iou >= IOU
    t, p, iou = t[ok], p[ok], iou[ok]
    used_t, used_p = set(), set()
    for i in np.argsort(-iou, kind="stable"):
        if t[i] not in used_t and p[i] not in used_p:
            used_t.add(int(t[i]))
            used_p.add(int(p[i]))
    return np.array(sorted(used_t), dtype=np.int64), np.array(sorted(used_p), dtype=np.int64)


def counts(pred: np.ndarray, true: np.ndarray, sparse: bool = False) -> tuple[int, int, int]:
    """TP, FP, FN of `pred` against `true` at IoU 0.5 (see the module docstring for `sparse`)."""
    t, p, inter, area_t, area_p = _overlaps(pred, true)
    matched_t, matched_p = _match(t, p, inter, area_t, area_p)
    n_true = int(np.count_nonzero(area_t[1:]))
    tp = len(matched_t)
    fn = n_true - tp
    if not sparse:
        n_pred = len(np.unique(pred[pred > 0]))
        return tp, n_pred - tp, fn
    covers = inter >= SPARSE_COVER * area_t[t]
    claimers = np.unique(p[covers])
    fp = len(np.setdiff1d(claimers, matched_p))
    return tp, fp, fn


def f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


# --- running --------------------------------------------------------------------


def _crop(a: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return a
    h, w = a.shape
    r, c = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[r:r + size, c:c + size]


def score_set(gt: GroundTruthSet, root: Path, quick: bool, crop: int | None, per_image: bool) -> list[dict]:
    rows = []
    pairs = image_pairs(gt, root)
    if quick:
        pairs = pairs[:1]
    for image_path, labels_path in pairs:
        image, _ = load_plane(image_path)
        true = read_labels(labels_path)
        image, true = _crop(image, crop), _crop(true, crop)
        default = segment(image, Params()).labels
        start = time.perf_counter()
        s = suggest(image)
        took = time.perf_counter() - start
        suggested = segment(image, s.params).labels
        row = {
            "name": image_path.stem,
            "default": f1(*counts(default, true, gt.sparse)),
            "suggested": f1(*counts(suggested, true, gt.sparse)),
            "time": took,
            "diameter": s.diameter_px,
        }
        rows.append(row)
        if per_image:
            print(f"  {gt.name:18s} {row['name']:24s} default {row['default']:.3f}  suggested "
                  f"{row['suggested']:.3f}  d={s.diameter_px:5.1f}  {s.params.threshold_method:8s} "
                  f"{took * 1000:5.0f} ms", flush=True)
    return rows


def _line(label: str, rows: list[dict]) -> str:
    d = [r["default"] for r in rows]
    s = [r["suggested"] for r in rows]
    worst_d = min(rows, key=lambda r: r["default"])
    worst_s = min(rows, key=lambda r: r["suggested"])
    times = [r["time"] for r in rows]
    return (f"{label:28s} {len(rows):3d}   {statistics.mean(d):.3f}  {worst_d['default']:.3f}   "
            f"{statistics.mean(s):.3f}  {worst_s['suggested']:.3f}   "
            f"{statistics.median(times) * 1000:5.0f} {max(times) * 1000:5.0f}   "
            f"{worst_s['name']}")


def time_large(size: int = 2048, repeats: int = 3) -> float:
    """Best of `repeats` suggest() calls on a synthetic 16-bit image of size × size."""
    image = nuclei_image(size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        suggest(image)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding the ground-truth sets")
    ap.add_argument("--quick", action="store_true", help="one image per set, cropped to 256 px; no 2048² timing")
    ap.add_argument("--sets", nargs="*", help="only these sets (folder names)")
    ap.add_argument("--per-image", action="store_true", help="print every image's scores")
    args = ap.parse_args(argv)

    crop = 256 if args.quick else None
    print("F1 at IoU 0.5: mean over the set's images and the worst image; suggest() time per image (ms)")
    print(f"{'set':28s} {'n':>3s}   {'defaults':^13s}   {'suggested':^13s}   {'time ms':^11s}   worst (suggested)")
    print(f"{'':28s} {'':3s}   {'mean':>5s}  {'worst':>5s}   {'mean':>5s}  {'worst':>5s}   {'med':>5s} {'max':>5s}")
    for gt in SETS:
        if args.sets and gt.name not in args.sets:
            continue
        if not (args.data / gt.name).is_dir():
            print(f"{gt.label:28s} skipped: {args.data / gt.name} is absent")
            continue
        rows = score_set(gt, args.data, args.quick, crop, args.per_image)
        if not rows:
            print(f"{gt.label:28s} skipped: no image with ground truth")
            continue
        print(_line(gt.label, rows), flush=True)
        if gt.name == "dsb2018_dev" and len(rows) > 1:
            half = len(rows) // 2
            print(_line("  first half (development)", rows[:half]))
            print(_line("  second half (held out)", rows[half:]))
    if not args.quick:
        print(f"suggest() on a 2048×2048 uint16 image: {time_large() * 1000:.0f} ms (best of 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
