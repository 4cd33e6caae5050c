"""Batch throughput and memory: images per second and peak memory of ``python -m segmentation``.

Synthesises uint16 2048×2048 nuclei-like images (about 1000 blobs of radius
8–20 px each, Gaussian blur, Poisson noise) in a temporary folder, then runs the
command line batch (the same ``run_batch`` code path as the app's Batch page)
in a fresh process per measurement:

* 8 images with 1 and 2 workers: images per second, against the bare course
  recipe run in a 2-process pool on the same files in the same run; the
  recipe run in a 1-process pool too, so that the CLI's 1 -> 2 scaling can be
  read against what the same cores give the bare recipe;
* 5 and 20 images with 2 workers: peak memory, which must not grow in
  proportion to the number of images (results stream into the zip).  Only
  these runs sample memory: sampling takes CPU from the workers.

Memory is reported two ways:

* ``ru_maxrss`` from ``resource.getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper
  process that reaps the whole batch tree (it is made the tree's subreaper):
  the peak RSS of the *largest single process* (batch process or a worker);
* the peak of the *sum* over the process tree (batch process, forkserver,
  workers), sampled every 50 ms from ``/proc/<pid>/smaps_rollup`` as PSS, so
  libraries shared between the workers are counted once.

Usage::

    python benchmarks/batch_bench.py            # prints a table
    python benchmarks/batch_bench.py --side 256 --images 4 --memory 2,4   # a tiny run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
SIDE = 2048
NUCLEI = 1000


def synth_image(seed: int, side: int = SIDE, nuclei: int = NUCLEI) -> np.ndarray:
    """Nuclei-like uint16 image: bright discs of radius 8–20 px on a dim, noisy background."""
    rng = np.random.default_rng(seed)
    img = np.full((side, side), 100.0, dtype=np.float32)
    yy, xx = np.mgrid[-20:21, -20:21]
    for _ in range(nuclei):
        r = rng.uniform(8, 20)
        cy, cx = rng.integers(20, side - 20, size=2)
        ry, rx = r * rng.uniform(0.8, 1.2), r * rng.uniform(0.8, 1.2)  # slightly elliptic
        disc = ((yy / ry) ** 2 + (xx / rx) ** 2) <= 1
        window = img[cy - 20:cy + 21, cx - 20:cx + 21]
        np.maximum(window, np.where(disc, rng.uniform(800, 3000), 0), out=window)
    img = ndimage.gaussian_filter(img, 2.0)
    return np.clip(rng.poisson(img), 0, 65535).astype(np.uint16)


def make_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:03d}.tif"
        if not path.exists():
            tifffile.imwrite(path, synth_image(i))
        paths.append(path)
    return paths


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# A fresh wrapper process per run: it becomes the "subreaper" of the batch's
# process tree, so the forkserver and the workers are reaped by it and count in
# its RUSAGE_CHILDREN, then reports ru_maxrss (kB) on its last stderr line.
_WRAPPER = """
import ctypes, os, resource, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
code = subprocess.run(sys.argv[1:]).returncode
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
print("ru_maxrss_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run_cli(inputs: Path, workers: int, out: Path, memory: bool = True) -> dict:
    """One batch in a fresh process; wall time, batch time and (if `memory`) its peak memory.

    Sampling the process tree's memory costs CPU (the kernel walks each
    process's page tables), which the workers would then miss: the speed runs
    go without it.
    """
    cmd = [sys.executable, "-c", _WRAPPER,
           sys.executable, "-m", "segmentation", str(inputs), "--out", str(out), "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, sum(_pss_kb(p) for p in _tree(proc.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    if memory:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"batch failed ({proc.returncode}):\n{err}")
    maxrss = int(re.search(r"ru_maxrss_kb (\d+)", err).group(1))
    found = re.search(r"wrote .*: (\d+) of (\d+) images segmented, .* in ([\d.]+) s", err)
    n, batch_s = int(found.group(2)), float(found.group(3))
    return {
        "images": n, "workers": workers, "wall_s": round(wall, 2), "batch_s": batch_s,
        "images_per_s": round(n / batch_s, 3), "images_per_s_wall": round(n / wall, 3),
        "max_single_process_rss_mb": round(maxrss / 1024, 1),
        "peak_tree_pss_mb": round(peak_tree / 1024, 1) if memory else None,
        "zip_mb": round(out.stat().st_size / 1e6, 1),
    }


def _recipe_file(path: Path, out: Path) -> None:
    """The bare course recipe on one file: read the TIFF, segment, write uint32 labels into `out`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pipeline_bench import course_recipe

    labels = course_recipe(tifffile.imread(path)).astype(np.uint32)
    tifffile.imwrite(out / f"{path.stem}.labels.tif", labels)


def recipe_pool(paths: list[Path], workers: int) -> float:
    """Images per second of the bare recipe in a process pool of `workers` (read, segment, write labels).

    The labels go to a folder of their own: never next to the inputs, where a
    later run with ``--keep`` would take them for images.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    ctx = multiprocessing.get_context("forkserver")
    with tempfile.TemporaryDirectory(prefix="recipe-labels-") as out:
        start = time.perf_counter()  # the pool's start counts, as it does in the CLI's own time
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            list(pool.map(partial(_recipe_file, out=Path(out)), paths))
        return len(paths) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="folder for the synthetic images (kept; default: a temp dir)")
    parser.add_argument("--side", type=int, default=SIDE, help="image side in px (default %(default)s)")
    parser.add_argument("--images", type=int, default=8, help="images for the speed runs (default %(default)s)")
    parser.add_argument("--memory", default="5,20", help="image counts whose peak memory is compared (default 5,20)")
    args = parser.parse_args(argv)
    few, many = (int(n) for n in args.memory.split(","))
    nuclei = max(4, NUCLEI * args.side * args.side // (SIDE * SIDE))

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        base = args.keep or Path(tmp)
        t = time.perf_counter()
        folder = base / f"images-{args.side}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(max(args.images, many)):
            path = folder / f"img_{i:03d}.tif"
            if not path.exists():
                tifffile.imwrite(path, synth_image(i, args.side, nuclei))
            paths.append(path)
        sets = {}
        for n in sorted({args.images, few, many}):
            sets[n] = base / f"set-{args.side}-{n}"
            sets[n].mkdir(exist_ok=True)
            for p in paths[:n]:
                if not (sets[n] / p.name).exists():
                    os.link(p, sets[n] / p.name)
        print(f"synthesised {len(paths)} images {args.side}x{args.side} uint16 in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        load = os.getloadavg()
        runs = {}
        for label, n, workers in (("1 worker", args.images, 1), ("2 workers", args.images, 2),
                                  (f"memory, {few} images", few, 2), (f"memory, {many} images", many, 2)):
            print(f"running: {label} ...", file=sys.stderr, flush=True)
            runs[label] = run_cli(sets[n], workers, Path(tmp) / f"out-{len(runs)}.zip",
                                  memory=label.startswith("memory"))
        print("running: the bare course recipe in a 1- and a 2-process pool ...", file=sys.stderr, flush=True)
        files = [sets[args.images] / p.name for p in paths[:args.images]]
        recipe_one, recipe = recipe_pool(files, 1), recipe_pool(files, 2)

    one, two = runs["1 worker"], runs["2 workers"]
    print(f"{args.images} images {args.side}x{args.side}; cores: {os.cpu_count()}; load before: {load[0]:.1f}")
    print(f"bare course recipe, 2-process pool:  {recipe:6.3f} img/s  (read, recipe, uint32 TIFF; nothing else)")
    for label in ("1 worker", "2 workers"):
        r = runs[label]
        print(f"CLI batch, {label:10s}:          {r['images_per_s']:6.3f} img/s  ({r['images_per_s'] / recipe:.2f} x "
              f"the recipe pool; labels, masks, ROIs, overlays, tables, zip)")
    print(f"1 -> 2 workers: {two['images_per_s'] / one['images_per_s']:.2f} x (the CLI's own time: from before "
          f"it starts its workers to the zip written); whole command, Python's start and imports included: "
          f"{two['images_per_s_wall'] / one['images_per_s_wall']:.2f} x")
    print(f"  the bare recipe's own 1 -> 2 processes on this machine, its pool's start counted: "
          f"{recipe / recipe_one:.2f} x ({recipe_one:.3f} -> {recipe:.3f} img/s): what the cores allow this work")
    m_few, m_many = runs[f"memory, {few} images"], runs[f"memory, {many} images"]
    print(f"peak memory (process tree, PSS): {few} images {m_few['peak_tree_pss_mb']:.0f} MB, {many} images "
          f"{m_many['peak_tree_pss_mb']:.0f} MB ({m_many['peak_tree_pss_mb'] / m_few['peak_tree_pss_mb']:.2f} x)")
    print("(the recipe's images/s above is its own reference)")
    if args.json:
        args.json.write_text(json.dumps({"load_before": load, "runs": runs, "recipe_pool_images_per_s": recipe,
                                          "recipe_pool_1_images_per_s": recipe_one},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
