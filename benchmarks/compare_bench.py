"""How long the Compare page's 4 × 4 filter grid takes on a 2048 × 2048 16-bit image.

Run from the project folder::

    python benchmarks/compare_bench.py                # 1 vs 2 threads vs 2 processes
    python benchmarks/compare_bench.py --per-cell     # and each cell alone
    python benchmarks/compare_bench.py --size 1024 --quick

The image is synthetic widefield nuclei (as in PERF-NOTES.md): ellipses of
radius 8-20 px, many touching, blurred with a PSF of sigma 1.5, background 100
plus a gradient, Poisson and read noise.  The grid is the page's default:
no filter, mean and median 3/5/9/15 px, Gaussian sigma 1/2/3/5 px; the
"no filter" row is one cell, so the grid has 13 distinct cells.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from scipy import ndimage as ndi

from segmentation import Params, segment
from segmentation.compare import (
    DEFAULT_SIGMAS, DEFAULT_WINDOWS, CellCache, cell_cost, cell_key, compute_cell, compute_cells, filter_grid,
)


def synthetic_nuclei(size: int = 2048, seed: int = 0) -> np.ndarray:
    """uint16 widefield-like nuclei, about 1 200 at 2048²."""
    rng = np.random.default_rng(seed)
    density = np.zeros((size, size), np.float64)
    n = int(1170 * (size / 2048) ** 2)
    rr, cc = np.ogrid[-24:25, -24:25]
    centres: list[tuple[float, float]] = []
    for _ in range(n):
        if centres and rng.random() < 0.6:  # touch a neighbour
            y0, x0 = centres[rng.integers(len(centres))]
            angle = rng.uniform(0, 2 * np.pi)
            y, x = y0 + 24 * np.sin(angle), x0 + 24 * np.cos(angle)
        else:
            y, x = rng.uniform(30, size - 30, 2)
        y, x = float(np.clip(y, 30, size - 30)), float(np.clip(x, 30, size - 30))
        centres.append((y, x))
        a, b = rng.uniform(8, 20, 2)
        theta = rng.uniform(0, np.pi)
        ct, st = np.cos(theta), np.sin(theta)
        d = ((cc * ct + rr * st) / a) ** 2 + ((-cc * st + rr * ct) / b) ** 2
        dome = np.clip(1 - d, 0, None) ** 0.5 * rng.uniform(900, 1600)
        iy, ix = int(y), int(x)
        patch = density[iy - 24 : iy + 25, ix - 24 : ix + 25]
        np.maximum(patch, dome, out=patch)
    density = ndi.gaussian_filter(density, 1.5)
    gradient = np.linspace(0, 60, size)[None, :]
    photons = rng.poisson(density + 100 + gradient) + rng.normal(0, 3, density.shape)
    return np.clip(photons, 0, 65535).astype(np.uint16)


def _cell_in_process(image, params):
    return compute_cell(image, params)


def run_processes(image, params_list, workers):
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    order = sorted(range(len(params_list)), key=lambda i: -cell_cost(params_list[i]))
    out = [None] * len(params_list)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(_cell_in_process, image, params_list[i]): i for i in order}
        for f in as_completed(futures):
            out[futures[f]] = f.result()
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_text(name: str, seconds: float) -> str:
    # forkserver workers are not our children, so their CPU time is not counted
    return "   n/a CPU" if "process" in name else f"{seconds:6.1f} s CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=2, help="rounds; configurations alternate within a round")
    ap.add_argument("--per-cell", action="store_true", help="also time each cell alone, one thread")
    ap.add_argument("--quick", action="store_true", help="2 threads and the cache only")
    args = ap.parse_args()

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine slows every figure below)")
    t0 = time.perf_counter()
    image = synthetic_nuclei(args.size)
    print(f"synthetic {image.shape} {image.dtype}, max {image.max()}, made in {time.perf_counter() - t0:.1f} s")
    params = Params()
    cells = [c for row in filter_grid(params, DEFAULT_SIGMAS, DEFAULT_WINDOWS) for c in row.cells]
    plist = [c.params for c in cells]
    print(f"filter grid: {len(cells)} distinct cells (4 rows x 4 sizes, 'no filter' once)\n")

    if args.per_cell:
        print("per cell, one thread (s):")
        total = 0.0
        for c in cells:
            t0 = time.perf_counter()
            r = compute_cell(image, c.params)
            t = time.perf_counter() - t0
            total += t
            print(f"  {c.params.filter:8s} {c.label:12s} {t:6.2f}   {r.count} objects")
        print(f"  sum = {total:.1f} s\n")

    configs = {"2 threads (the app)": lambda: compute_cells(image, plist, workers=2)}
    if not args.quick:
        configs["1 thread"] = lambda: compute_cells(image, plist, workers=1)
        configs["2 processes (forkserver; start-up and pickling included)"] = lambda: run_processes(image, plist, 2)
    wall: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    reference = None
    for _ in range(args.repeat):
        for name, fn in configs.items():
            load = os.getloadavg()[0]
            c0, t0 = cpu_seconds(), time.perf_counter()
            out = fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
            print(f"  {name:58s} {wall[name][-1]:6.1f} s wall, {_cpu_text(name, cpu[name][-1])} "
                  f"(load before {load:.1f})")
            if reference is None:
                reference = out
            assert all(np.array_equal(a.labels, b.labels) for a, b in zip(reference, out))

    # the app's path: CellCache (shared pool, 2 threads), then a cache hit
    cache = CellCache(max_bytes=2 << 30, workers=2)

    def through_cache():
        futures = [cache.submit(("img", cell_key(p)), compute_cell, image, p)
                   for p in sorted(plist, key=lambda p: -cell_cost(p))]
        return [f.result() for f in futures]

    t0 = time.perf_counter()
    through_cache()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    through_cache()
    hit = time.perf_counter() - t0

    print(f"\nfull 4 x 4 filter grid, {args.size}² uint16 (median of {args.repeat}):")
    for name in configs:
        print(f"  {name:58s} {statistics.median(wall[name]):6.1f} s wall, "
              f"{_cpu_text(name, statistics.median(cpu[name]))}")
    print(f"  {'CellCache, 2 threads (first view of the page)':58s} {first:6.1f} s wall")
    print(f"  {'CellCache hit (crop moved, page revisited)':58s} {hit * 1000:6.1f} ms")
    print(f"  kept in memory: {cache.nbytes / 2**20:.0f} MiB for {len(cache)} cells; load now {os.getloadavg()[0]:.1f}")

    # same answer as segment() on two cells
    for p in (plist[0], plist[-1]):
        ref = segment(image, p)
        r = compute_cell(image, p)
        assert np.array_equal(r.mask, ref.mask) and np.array_equal(r.labels, ref.labels) and r.count == ref.count
    print("cells equal segment() on the checked cells")


if __name__ == "__main__":
    main()
