"""Command line batch: ``python -m segmentation INPUT... --out results.zip``.

Exit status: 0 when every input succeeded, 1 when some failed (the others are
still written), 2 for a usage error (missing input, unreadable settings).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .batch import ImageOutcome, collect_inputs, run_batch
from .params import Params

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m segmentation",
        description="Segment nuclei in every image of the given files and folders with the same "
        "settings, and write one results zip (labels, masks, overlays, measurements, summary).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, or folders searched recursively for .tif/.tiff/.png/.jpg/.jpeg")
    p.add_argument("--out", required=True, metavar="results.zip", help="zip file to write")
    p.add_argument("--settings", metavar="settings.json",
                   help="settings saved by the app (default: the course's recipe)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="images processed in parallel (default: every core, %(default)s here)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        params = Params.from_json(Path(args.settings).read_text(encoding="utf-8")) if args.settings else Params()
    except (OSError, ValueError) as exc:
        print(f"error: cannot use settings '{args.settings}': {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be 1 or more", file=sys.stderr)
        return 2
    try:
        inputs, skipped = collect_inputs(args.inputs)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print("error: no image files (.tif, .tiff, .png, .jpg, .jpeg) found in the inputs", file=sys.stderr)
        return 2
    for name in skipped:
        print(f"skipped {name}: not an image file", file=sys.stderr)

    def progress(done: int, total: int, outcome: ImageOutcome) -> None:
        if outcome.status == "ok":
            row = outcome.row
            what = f"{row['objects']} objects, threshold {row['threshold']:.6g}"
        else:
            what = f"FAILED: {outcome.reason}"
        print(f"[{done}/{total}] {outcome.name}: {what}", file=sys.stderr, flush=True)

    report = run_batch(inputs, params, args.out, workers=args.workers, skipped=skipped, on_progress=progress)
    print(f"wrote {args.out}: {report.n_ok} of {len(inputs)} images segmented, "
          f"{len(report.errors)} failed, in {report.seconds:.1f} s", file=sys.stderr)
    return 1 if report.errors else 0
