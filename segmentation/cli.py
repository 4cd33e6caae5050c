"""Command line batch: ``python -m segmentation INPUT... --out results.zip``.

Exit status: 0 when every input succeeded, 1 when some failed (the others are
still written), 2 for a usage error (missing input, unreadable settings, a
scheduler that cannot be reached).  ``--scheduler`` runs the images on a Dask
cluster (:mod:`segmentation.cluster`) into the same zip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .batch import ImageOutcome, run_batch
from .cluster import ClusterError, DaskWorkers, connect
from .conditions import compile_pattern
from .inputs import InputPlan, plan_paths, stage
from .params import MAX_SETTINGS_BYTES, Params
from .safety import visible
from .workers import LocalWorkers, default_workers

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
                   help="settings saved by the app (default: the course's recipe), or 'auto': settings suggested "
                        "for each image from the image itself (each image's settings go into the zip)")
    p.add_argument("--pattern", metavar="REGEX",
                   help="read each image's condition from its path with a regular expression with named groups, "
                        "e.g. '(?P<well>[A-H]\\d{2})_(?P<treatment>[^_]+)' (default: the first sub-folder)")
    p.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                   help="images processed in parallel (default: every core, %(default)s here); "
                   "with --scheduler local, the number of Dask worker processes; ignored with a scheduler address")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the images on a Dask cluster: the address of a running scheduler (as `dask scheduler` "
                   "prints it, e.g. tcp://10.0.0.5:8786), or 'local' to start worker processes on this computer. "
                   "The workers read the images from the same paths as this computer, so they need the same shared "
                   "filesystem; images they cannot see are sent to them with the task. Results stream into the "
                   "same zip. Needs Dask: pip install -e \".[cluster]\". See the README, 'On a cluster'")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    suggest_each = args.settings == "auto"
    try:
        params = _read_settings(args.settings) if args.settings and not suggest_each else Params()
    except (OSError, ValueError) as exc:
        print(f"error: cannot use settings '{visible(args.settings)}': {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be 1 or more", file=sys.stderr)
        return 2
    if args.pattern:
        try:
            compile_pattern(args.pattern)
        except ValueError as exc:
            print(f"error: --pattern: {exc}", file=sys.stderr)
            return 2
    try:
        plan = plan_paths(args.inputs)
    except FileNotFoundError as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 2
    for problem in plan.problems:
        print(f"problem: {visible(problem)}", file=sys.stderr)
    if not plan.images:
        print("error: no image files (.tif, .tiff, .png, .jpg, .jpeg) found in the inputs", file=sys.stderr)
        return 2
    for renamed in plan.renamed:
        print(f"renamed {visible(renamed.original)} -> {renamed.name}: {renamed.reason}", file=sys.stderr)
    pool = None
    if args.scheduler is not None:
        try:
            pool = _cluster(args.scheduler, args.workers)
        except KeyboardInterrupt:
            print("stopped before the batch started", file=sys.stderr)
            return 130
        if pool is None:
            return 2
    started = time.perf_counter()  # the time reported counts starting local workers, not waiting for a cluster
    if pool is None and args.workers > 1 and len(plan.images) > 1:
        pool = LocalWorkers(min(args.workers, len(plan.images)))
        pool.warm()  # the workers start and warm up while the inputs are staged

    def progress(done: int, total: int, outcome: ImageOutcome) -> None:
        if outcome.status == "ok":
            row = outcome.row
            what = f"{row['objects']} objects, threshold {row['threshold']:.6g}"
        else:
            what = f"FAILED: {outcome.reason}"
        print(f"[{done}/{total}] {visible(outcome.name)}: {visible(what)}", file=sys.stderr, flush=True)

    try:
        return _run(args, params, plan, pool, progress, started)
    finally:
        if pool is not None:
            pool.shutdown()


def _cluster(address: str, workers: int) -> DaskWorkers | None:
    """The Dask cluster's workers, or None after saying why they cannot be used."""
    try:
        pool = connect(address, workers=workers)
    except ClusterError as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return None
    try:
        if not pool.client.nthreads():
            print(f"cluster {visible(pool.address)} has no workers yet: waiting for the first (Ctrl-C to stop)",
                  file=sys.stderr, flush=True)
            pool.wait_for_workers(1)
            pool.check_workers()
        print(f"cluster {visible(pool.describe())}", file=sys.stderr, flush=True)
        return pool
    except ClusterError as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - the scheduler went away meanwhile, ...
        message = f"lost the Dask scheduler at {address} ({type(exc).__name__}: {exc})"
    except BaseException:
        pool.shutdown()
        raise
    pool.shutdown()
    print(f"error: {visible(message)}", file=sys.stderr)
    return None


def _run(args: argparse.Namespace, params: Params, plan: InputPlan, pool: DaskWorkers | LocalWorkers | None,
         progress: Callable[[int, int, ImageOutcome], None], started: float) -> int:
    with tempfile.TemporaryDirectory(prefix="nuclei-cli-") as staging:
        inputs, failed = stage(plan, staging)  # zip members are extracted here; files are read in place
        for s in plan.skipped:
            if s.kind != "hidden":
                print(f"skipped {visible(s.name)}: {s.reason}", file=sys.stderr)
        for s in failed:
            print(f"FAILED {visible(s.name)}: {s.reason}", file=sys.stderr)
        try:
            report = run_batch(inputs, params, args.out, workers=args.workers, skipped=plan.skipped,
                               unreadable=failed, on_progress=progress, pattern=args.pattern,
                               suggest_each=args.settings == "auto", pool=pool)
        except KeyboardInterrupt:
            print(f"stopped: {args.out} holds the images finished so far", file=sys.stderr)
            return 130
    print(f"wrote {args.out}: {report.n_ok} of {len(inputs) + len(failed)} images segmented, "
          f"{len(report.errors)} failed or skipped for a problem, in {time.perf_counter() - started:.2f} s",
          file=sys.stderr)
    return 1 if report.errors else 0


def _read_settings(path: str) -> Params:
    """The settings file at `path` (bounded in size before it is read)."""
    file = Path(path)
    if file.stat().st_size > MAX_SETTINGS_BYTES:
        raise ValueError(f"the file is {file.stat().st_size / 1e6:.3g} MB; a settings file of this app is a few "
                         f"hundred bytes (at most {MAX_SETTINGS_BYTES // 1024} kB): is it the right file?")
    return Params.from_json(file.read_bytes())
