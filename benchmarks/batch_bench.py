"""Batch throughput and memory: images per second and peak memory of ``python -m segmentation``.

Synthesises uint16 2048×2048 nuclei-like images (about 1000 blobs of radius
8–20 px each, Gaussian blur, Poisson noise) in a temporary folder, then runs the
command line batch (the same ``run_batch`` code path as the app's Batch page)
in a fresh process per measurement:

* 20 images with 1 worker and with every core: images per second;
* 5 and 20 images with every core: peak memory, which must not grow in
  proportion to the number of images (results stream into the zip).

Memory is reported two ways:

* ``ru_maxrss`` from ``resource.getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper
  process that reaps the whole batch tree (it is made the tree's subreaper):
  the peak RSS of the *largest single process* (batch process or a worker);
* the peak of the *sum* over the process tree (batch process, forkserver,
  workers), sampled every 50 ms from ``/proc/<pid>/smaps_rollup`` as PSS, so
  libraries shared between the workers are counted once.

Usage::

    python benchmarks/batch_bench.py            # prints a table
    python benchmarks/batch_bench.py --json out.json
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


def run_cli(inputs: Path, workers: int, out: Path) -> dict:
    """One batch in a fresh process; wall time, batch time and memory."""
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
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
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
        "peak_tree_pss_mb": round(peak_tree / 1024, 1),
        "zip_mb": round(out.stat().st_size / 1e6, 1),
    }


def recipe_baseline(paths: list[Path], out: Path) -> float:
    """Images per second of the plain course recipe, read TIFF -> labels -> write uint32 TIFF, one process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pipeline_bench import course_recipe

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for p in paths:
        tifffile.imwrite(out / p.name, course_recipe(tifffile.imread(p)).astype(np.uint32))
    return len(paths) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="folder for the synthetic images (kept; default: a temp dir)")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        base = args.keep or Path(tmp)
        t = time.perf_counter()
        twenty = make_images(base / "twenty", 20)
        five_dir = base / "five"
        five_dir.mkdir(parents=True, exist_ok=True)
        for p in twenty[:5]:
            target = five_dir / p.name
            if not target.exists():
                os.link(p, target)
        print(f"synthesised 20 images {SIDE}x{SIDE} uint16 (~{NUCLEI} nuclei each) in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        load = os.getloadavg()
        runs = []
        for label, folder, workers in (("5 images, all cores", five_dir, cores),
                                       ("20 images, all cores", base / "twenty", cores),
                                       ("20 images, 1 worker", base / "twenty", 1)):
            print(f"running: {label} ...", file=sys.stderr, flush=True)
            result = run_cli(folder, workers, Path(tmp) / f"out-{len(runs)}.zip")
            result["label"] = label
            runs.append(result)
        print("running: plain course recipe baseline ...", file=sys.stderr, flush=True)
        baseline = recipe_baseline(twenty, Path(tmp) / "recipe")

    header = (f"{'run':<22}{'workers':>8}{'images/s':>10}{'batch s':>9}{'wall s':>8}"
              f"{'peak tree PSS MB':>18}{'largest proc RSS MB':>21}{'zip MB':>8}")
    print(f"cores: {cores}; load average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"python {sys.version.split()[0]}")
    print(header)
    for r in runs:
        rss = f"{r['max_single_process_rss_mb']:.0f}"
        print(f"{r['label']:<22}{r['workers']:>8}{r['images_per_s']:>10.3f}{r['batch_s']:>9.1f}{r['wall_s']:>8.1f}"
              f"{r['peak_tree_pss_mb']:>18.0f}{rss:>21}{r['zip_mb']:>8.1f}")
    print(f"{'plain recipe (baseline)':<22}{1:>8}{baseline:>10.3f}   (read, recipe, uint32 TIFF; no measure/overlay/zip)")
    one, many = runs[2], runs[1]
    print(f"vs baseline: 1 worker {one['images_per_s'] / baseline:.2f}x, {cores} workers "
          f"{many['images_per_s'] / baseline:.2f}x the recipe's images/s")
    print(f"speed-up with {cores} workers: {many['images_per_s'] / one['images_per_s']:.2f}x; "
          f"peak memory 20 vs 5 images: {many['peak_tree_pss_mb'] / runs[0]['peak_tree_pss_mb']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "load_before": load, "runs": runs,
                                               "recipe_images_per_s": baseline}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
