"""Synthetic widefield nuclei images for benchmarks (never for correctness tests)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def nuclei_image(size: int = 2048, n: int | None = None, seed: int = 0) -> np.ndarray:
    """uint16 image of touching elliptical nuclei on an uneven background, with Poisson noise.

    About one nucleus per 3,600 px² (1,170 at 2048²), radius 8-20 px, 60 % touching a neighbour.
    """
    rng = np.random.default_rng(seed)
    n = n or size * size // 3600
    img = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[-24:25, -24:25]
    centres = rng.uniform(30, size - 30, (n, 2))
    touching = rng.random(n) < 0.6
    centres[1:][touching[1:]] = centres[:-1][touching[1:]] + rng.normal(0, 14, (touching[1:].sum(), 2))
    centres = np.clip(centres, 25, size - 26).astype(int)
    for (cy, cx), a, b, th in zip(centres, rng.uniform(8, 20, n), rng.uniform(8, 20, n), rng.uniform(0, np.pi, n)):
        u = (xx * np.cos(th) + yy * np.sin(th)) / a
        v = (-xx * np.sin(th) + yy * np.cos(th)) / b
        r2 = u * u + v * v
        dome = np.where(r2 < 1, 1 - 0.5 * r2, 0)
        sl = img[cy - 24:cy + 25, cx - 24:cx + 25]
        np.maximum(sl, dome * rng.uniform(900, 1600), out=sl)
    img = ndi.gaussian_filter(img, 1.5)
    ramp = np.linspace(0, 60, size, dtype=np.float32)
    img += 100 + ramp[None, :]
    img = rng.poisson(img).astype(np.float32) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16)
