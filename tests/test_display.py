"""segmentation/display.py: pictures for people, and the one ~1 Mpx subsample behind histograms and contrast."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage.segmentation import find_boundaries

from segmentation import Params, segment
from segmentation.display import (
    HALO_RGB,
    OUTLINE_RGB,
    REMOVED_RGB,
    SEED_RGB,
    colorize_labels,
    display_range,
    downsample,
    downsample_factor,
    format_value,
    histogram_counts,
    inner_boundaries,
    label_colors,
    outline_overlay,
    png_bytes,
    stretch,
    stretch_between,
    subsample,
)


@pytest.fixture(scope="module")
def result(sample):
    return segment(sample, Params())


def test_inner_boundaries_equal_find_boundaries(result):
    rng = np.random.default_rng(0)
    cases = [result.labels, result.removed, rng.integers(0, 4, (37, 53)), np.zeros((5, 6), int), np.ones((1, 7), int)]
    for labels in cases:
        np.testing.assert_array_equal(inner_boundaries(labels), find_boundaries(labels, mode="inner"))


def test_stretch_maps_percentiles_to_black_and_white():
    img = np.arange(10_000, dtype=np.uint16).reshape(100, 100) * 6  # a 16-bit ramp
    out = stretch(img, 1, 99)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    lo, hi = np.percentile(img, [1, 99])
    np.testing.assert_array_equal(out, stretch_between(img, lo, hi))
    assert stretch_between(np.array([[5.0, 5.0]]), 5, 5).tolist() == [[0, 0]]  # flat: no division by zero


def test_subsample_keeps_about_a_million_pixels_and_the_range():
    img = np.random.default_rng(1).integers(0, 4096, (3000, 2500), dtype=np.uint16)
    small = subsample(img)
    assert 1e6 <= small.size < 4e6 and small.base is img  # a view, no copy
    assert subsample(img[:100, :100]) is not None and subsample(img[:100, :100]).shape == (100, 100)
    counts, edges = histogram_counts(img)
    assert counts.sum() == small.size and len(edges) == 257
    lo, hi = display_range(img, 0, 100)
    assert lo == small.min() and hi == small.max()


def test_downsample_keeps_label_ids():
    labels = np.repeat(np.repeat(np.arange(12).reshape(3, 4), 10, axis=0), 10, axis=1)
    step = downsample_factor(labels.shape, 10)
    assert step == 4
    assert set(np.unique(downsample(labels, step))) <= set(range(12))
    assert downsample(labels, 1) is labels


def test_overlay_draws_outlines_removed_objects_and_seeds():
    labels = np.zeros((20, 20), np.uint32)
    labels[2:8, 2:8] = 1
    removed = np.zeros((20, 20), bool)
    removed[12:16, 12:16] = True
    rgb = outline_overlay(np.full((20, 20), 90, np.uint8), labels, removed, seeds=np.array([[5, 15]]))
    assert (rgb[2, 2] == OUTLINE_RGB).all() and (rgb[5, 5] == 90).all()
    assert (rgb[12, 12] == REMOVED_RGB).all() and (rgb[5, 15] == SEED_RGB).all()


def test_label_colours_and_png_round_trip():
    lut = label_colors(5)
    assert lut.shape == (6, 3) and (lut[0] == 0).all() and (lut[1:] >= 60).all()
    labels = np.array([[0, 1], [2, 0]])
    rgb = colorize_labels(labels)
    assert (rgb[0, 0] == 0).all() and not (rgb[0, 1] == 0).all()
    back = np.asarray(Image.open(io.BytesIO(png_bytes(rgb))))
    np.testing.assert_array_equal(back, rgb)


@pytest.mark.parametrize("value, text", [(33421.0, "33421"), (33421.171875, "33421.2"), (534.4921875, "534.49"),
                                         (0.0286123, "0.028612"), (1e-6, "1e-06"), (-12.25, "-12.25"),
                                         (2e6 + 0.3, "2000000")])
def test_format_value_never_uses_exponents_for_ordinary_intensities(value, text):
    assert format_value(value) == text


def test_halo_darkens_just_outside_the_outlines_of_white_nuclei():
    labels = np.zeros((12, 12), np.uint32)
    labels[3:9, 3:9] = 1
    white = np.full((12, 12), 255, np.uint8)
    rgb = outline_overlay(white, labels, halo=True)
    assert (rgb[3, 3] == OUTLINE_RGB).all()  # the outline itself
    assert (rgb[2, 5] == HALO_RGB).all() and (rgb[5, 2] == HALO_RGB).all()  # the ring just outside
    assert (rgb[0, 0] == 255).all() and (rgb[5, 5] == 255).all()  # far away, and inside
    assert (outline_overlay(white, labels)[2, 5] == 255).all()  # no halo unless asked
