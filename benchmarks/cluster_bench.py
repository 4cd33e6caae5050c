"""Batch throughput on a Dask cluster vs local worker processes, and the per-image cost of Dask.

Synthesises ``--images`` uint16 images of ``--side``² (``synthetic.nuclei_image(side, seed=i)``)
as TIFFs, then in this one process:

* the plain course recipe (read TIFF, ``course_recipe``, write a uint32 TIFF), one image after
  another: the baseline every rate is divided by;
* ``run_batch`` with ``--workers`` local worker processes (``LocalWorkers``, as ``--workers N``);
* ``run_batch`` on a Dask cluster of ``--workers`` single-thread worker processes
  (``cluster.connect("local")``, as ``--scheduler local``; or ``--scheduler ADDRESS``);
* both again on ``--tiny`` images of 64², where segmenting costs next to nothing: the difference
  per image is what Dask adds (task round trip, result transfer).

Both pools are started and warmed up (one image) before they are timed; their start-up is
reported on its own.  On a shared machine, ``--rounds 3`` alternates the runs and reports medians.

Usage::

    python benchmarks/cluster_bench.py                         # 40 images of 2048²
    python benchmarks/cluster_bench.py --images 4 --side 256   # a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import course_recipe  # noqa: E402
from synthetic import nuclei_image  # noqa: E402

from segmentation import Params  # noqa: E402
from segmentation.batch import run_batch  # noqa: E402
from segmentation.cluster import connect  # noqa: E402
from segmentation.inputs import BatchInput  # noqa: E402
from segmentation.workers import LocalWorkers  # noqa: E402


def make_images(folder: Path, n: int, side: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{side}_{i:03d}.tif"
        if not path.exists():
            tifffile.imwrite(path, nuclei_image(side, seed=i))
        paths.append(path)
    return paths


def recipe_rate(paths: list[Path], out: Path) -> float:
    """Images per second of the plain course recipe: read TIFF -> labels -> uint32 TIFF, one process."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for p in paths:
        tifffile.imwrite(out / p.name, course_recipe(tifffile.imread(p)).astype(np.uint32))
    return len(paths) / (time.perf_counter() - start)


def batch(paths: list[Path], pool, out: Path) -> tuple[float, float, float]:
    """Seconds for the whole batch, the median seconds one image took inside its worker, and the CPU
    seconds of this process (zip writing, results; with a LocalCluster also the scheduler)."""
    inputs = [BatchInput(p.name, p) for p in paths]
    cpu = time.process_time()
    report = run_batch(inputs, Params(), out, pool=pool)
    cpu = time.process_time() - cpu
    assert report.n_ok == len(paths), report.errors
    return report.seconds, float(report.summary["seconds"].median()), cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2, help="worker processes, local and on the cluster")
    parser.add_argument("--tiny", type=int, default=40, help="64² images for the per-image overhead")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the runs this many times; medians reported")
    parser.add_argument("--scheduler", default="local", help="Dask scheduler address (default: a LocalCluster)")
    parser.add_argument("--keep", type=Path, help="folder for the synthetic images (kept; default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    runs: dict[str, list[float]] = {k: [] for k in ("recipe", "local", "dask", "local_image", "dask_image",
                                                     "local_cpu", "dask_cpu", "local_tiny", "dask_tiny")}
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        base = args.keep or Path(tmp)
        t = time.perf_counter()
        paths = make_images(base / "images", args.images, args.side)
        tiny = make_images(base / "tiny", args.tiny, 64)
        warm = make_images(base / "warm", 1, 64)
        print(f"synthesised {args.images} images {args.side}² in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        load = os.getloadavg()
        out = Path(tmp)

        t = time.perf_counter()
        local = LocalWorkers(args.workers)
        batch(warm, local, out / "warm.zip")
        local_start = time.perf_counter() - t
        t = time.perf_counter()
        dask = connect(args.scheduler, workers=args.workers)
        batch(warm, dask, out / "warm.zip")
        dask_start = time.perf_counter() - t
        try:
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}: recipe, local ({args.workers} workers), "
                      f"Dask ({dask.describe()}) ...", file=sys.stderr, flush=True)
                runs["recipe"].append(args.images / recipe_rate(paths, out / "recipe"))
                order = [("local", local), ("dask", dask)]
                for name, pool in order if r % 2 == 0 else order[::-1]:  # neither always goes first
                    seconds, per_image, cpu = batch(paths, pool, out / f"{name}.zip")
                    runs[name].append(seconds)
                    runs[f"{name}_image"].append(per_image)
                    runs[f"{name}_cpu"].append(cpu)
                    runs[f"{name}_tiny"].append(batch(tiny, pool, out / f"{name}-tiny.zip")[0])
        finally:
            local.shutdown()
            dask.shutdown()

    med = {k: statistics.median(v) for k, v in runs.items()}
    n = args.images
    rate = {k: n / med[k] for k in ("recipe", "local", "dask")}
    per_image_ms = 1000 * (med["dask_tiny"] - med["local_tiny"]) / args.tiny
    print(f"{n} images {args.side}², {args.workers} workers, median of {args.rounds} round(s); cores: "
          f"{os.cpu_count()}; load average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"python {sys.version.split()[0]}")
    print(f"{'run':<34}{'images/s':>10}{'vs recipe':>11}{'seconds':>9}{'s/image in worker':>19}"
          f"{'batch process CPU s/image':>27}")
    print(f"{'plain recipe, 1 process':<34}{rate['recipe']:>10.3f}{1:>10.2f}x{med['recipe']:>9.1f}")
    for key, label in (("local", "local"), ("dask", "Dask")):
        print(f"{f'{label}, {args.workers} worker processes':<34}{rate[key]:>10.3f}{rate[key] / rate['recipe']:>10.2f}x"
              f"{med[key]:>9.1f}{med[f'{key}_image']:>19.2f}{med[f'{key}_cpu'] / n:>27.3f}")
    print(f"Dask vs local: {rate['dask'] / rate['local']:.2f}x the images/s")
    print(f"per image, {args.tiny} images of 64²: local {1000 * med['local_tiny'] / args.tiny:.1f} ms, "
          f"Dask {1000 * med['dask_tiny'] / args.tiny:.1f} ms: Dask adds {per_image_ms:.1f} ms per image")
    print(f"start-up incl. one warm-up image: local pool {local_start:.1f} s, Dask cluster {dask_start:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"images": n, "side": args.side, "workers": args.workers, "load_before": load,
                                         "runs": runs, "local_start_s": local_start, "dask_start_s": dask_start},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
