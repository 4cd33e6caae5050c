"""suggest(): settings measured from the image itself.

Synthetic nuclei of known size test each measurement; real images with ground
truth (../shared/data, skipped where absent) test that the suggestion helps.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi

from testdata import require_shared
from segmentation import ImageReadError, Params, segment
from segmentation.suggest import suggest


def nuclei(radius: float, size: int = 384, cover: float = 0.15, seed: int = 0, contrast: float = 1000.0,
           background: float = 100.0, noise: float = 5.0) -> tuple[np.ndarray, int]:
    """uint16 image of round nuclei of one radius, uneven brightness, Poisson + Gaussian noise.

    Returns the image and the number of nuclei (overlapping ones may touch).
    """
    rng = np.random.default_rng(seed)
    n = max(3, int(cover * size * size / (np.pi * radius**2)))
    img = np.zeros((size, size))
    k = int(np.ceil(radius))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    for cy, cx in rng.uniform(radius, size - radius, (n, 2)).round().astype(int):
        box = img[cy - k : cy + k + 1, cx - k : cx + k + 1]
        disk = yy[: box.shape[0], : box.shape[1]] ** 2 + xx[: box.shape[0], : box.shape[1]] ** 2 < radius**2
        box[disk] = rng.uniform(0.5, 1.0)
    img = ndi.gaussian_filter(img, 1.0) * contrast + background
    img = rng.poisson(img) + rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16), n


def f1_at_iou50(pred: np.ndarray, true: np.ndarray) -> float:
    """F1 of the objects matched one-to-one at IoU > 0.5 (such a match is unique)."""
    pred, true = pred.astype(np.int64), true.astype(np.int64)
    both = (pred > 0) & (true > 0)
    pairs, inter = np.unique(true[both] * (pred.max() + 1) + pred[both], return_counts=True)
    t, p = np.divmod(pairs, pred.max() + 1)
    area_t, area_p = np.bincount(true.ravel()), np.bincount(pred.ravel())
    tp = int(np.count_nonzero(inter / (area_t[t] + area_p[p] - inter) > 0.5))
    n_true, n_pred = np.count_nonzero(area_t[1:]), np.count_nonzero(area_p[1:])
    return 2 * tp / (n_true + n_pred)


def median_diameter(labels: np.ndarray) -> float:
    areas = np.bincount(labels.ravel())[1:]
    return float(np.median(2 * np.sqrt(areas[areas > 0] / np.pi)))


# --- the typical diameter --------------------------------------------------------------------


@pytest.mark.parametrize("radius", [5, 10, 20])
@pytest.mark.parametrize("cover", [0.05, 0.3], ids=["sparse", "dense"])
def test_diameter_of_synthetic_nuclei_within_20_percent(radius, cover):
    img, _ = nuclei(radius, size=512, cover=cover)
    s = suggest(img)
    assert s.measured
    assert s.diameter_px == pytest.approx(2 * radius, rel=0.2)


@pytest.mark.parametrize("radius", [5, 20])
def test_diameter_on_a_large_image_measured_on_a_reduced_copy(radius):
    # 2048 px: the overview is reduced 4x, so 10 px nuclei need the full-resolution detail view
    img, _ = nuclei(radius, size=2048, cover=0.15)
    assert suggest(img).diameter_px == pytest.approx(2 * radius, rel=0.2)


def test_large_image_with_an_empty_middle_is_measured_on_the_whole_field():
    img, _ = nuclei(15, size=2048, cover=0.15)
    img[400:1648, 400:1648] = np.median(img)  # the central detail view sees no nucleus
    s = suggest(img)
    assert s.measured and s.diameter_px == pytest.approx(30, rel=0.2)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda a: (a // 16).astype(np.uint8), id="8-bit"),
        pytest.param(lambda a: (a // 16).astype(np.uint16), id="12-bit-in-16-bit"),
        pytest.param(lambda a: (a + 32768).astype(np.uint16), id="signed-offset-32768"),
        pytest.param(lambda a: a.astype(np.float32) / 65535, id="float-0-1"),
    ],
)
def test_same_measurements_whatever_the_storage(convert):
    img, _ = nuclei(10, size=256)
    base = suggest(img)
    other = suggest(convert(img))
    assert other.diameter_px == pytest.approx(base.diameter_px, rel=0.1)
    assert other.polarity == base.polarity == "bright"
    assert other.params.threshold_method == base.params.threshold_method
    # intensities stay in the image's own units: the offset scales with the contrast
    scale = float(convert(np.array([2000.0])).item() - convert(np.array([1000.0])).item()) / 1000
    assert other.contrast == pytest.approx(base.contrast * scale, rel=0.15)


# --- polarity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [5, 10, 20])
def test_inverted_image_gives_the_other_polarity(radius):
    img, _ = nuclei(radius)
    bright = suggest(img)
    dark = suggest(np.iinfo(np.uint16).max - img)
    assert (bright.polarity, bright.params.objects) == ("bright", "bright")
    assert (dark.polarity, dark.params.objects) == ("dark", "dark")
    assert dark.diameter_px == pytest.approx(bright.diameter_px, rel=0.1)
    # the dark cutoff lies below the local mean: same nuclei either way
    n_bright = segment(img, bright.params).count
    n_dark = segment(np.iinfo(np.uint16).max - img, dark.params).count
    assert abs(n_bright - n_dark) <= max(2, 0.05 * n_bright)


def test_polarity_of_a_dense_field():
    img, _ = nuclei(10, cover=0.45)
    assert suggest(img).polarity == "bright"
    assert suggest(img.max() - img).polarity == "dark"


# --- background -------------------------------------------------------------------------------


def test_strong_illumination_gradient_turns_on_background_subtraction():
    img, _ = nuclei(10, size=384, seed=2)
    flat = suggest(img)
    assert flat.params.background == "none"
    assert flat.background_unevenness < 0.5
    ramp = np.linspace(0, 1500, img.shape[1])[None, :]  # 1.5x the brightest nucleus
    uneven = (img + ramp).astype(np.uint16)
    s = suggest(uneven)
    assert s.background_unevenness > 1
    assert s.params.background == "tophat"
    # radius from the diameter: larger than a nucleus, so nuclei are not hollowed out
    assert s.diameter_px / 2 < s.params.background_radius <= 2 * s.diameter_px
    assert any("background" in r for r in s.reasons)
    # and the nuclei are still found on both sides of the field
    n_flat = segment(img, flat.params).count
    n_uneven = segment(uneven, s.params).count
    assert abs(n_uneven - n_flat) <= 0.1 * n_flat


def with_debris_and_haze(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """Add 15 small debris 30x brighter than the nuclei and a few broad patches of haze."""
    rng = np.random.default_rng(seed)
    spots = np.zeros(img.shape)
    for cy, cx in rng.uniform(20, img.shape[0] - 20, (15, 2)).astype(int):
        spots[cy - 2 : cy + 3, cx - 2 : cx + 3] = 1
    haze = np.zeros(img.shape)
    haze[tuple(rng.integers(0, img.shape[0], (2, 4)))] = 1
    haze = ndi.gaussian_filter(haze, 40)
    out = img + ndi.gaussian_filter(spots, 1.5) * 3000 + haze / haze.max() * 150
    return out.clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize("seed", [0, 1])
def test_bright_debris_give_li_with_background_subtraction(seed):
    img, n = nuclei(12, size=512, seed=seed, contrast=100, noise=3)
    dirty = with_debris_and_haze(img, seed)
    s = suggest(dirty)
    assert s.bright_debris
    assert (s.params.threshold_method, s.params.background) == ("li", "tophat")
    assert s.diameter_px == pytest.approx(24, rel=0.2)
    assert any("debris" in r for r in s.reasons)
    # Otsu (the defaults) finds the debris only; the suggestion finds the nuclei
    assert segment(dirty, Params()).count < 0.3 * n
    assert segment(dirty, s.params).count == pytest.approx(segment(img, suggest(img).params).count, rel=0.15)
    # without the debris the same nuclei give two clear classes and a local threshold
    clean = suggest(img)
    assert not clean.bright_debris and clean.params.threshold_method == "local"


def test_dark_nuclei_get_no_top_hat_even_on_an_uneven_background():
    img, _ = nuclei(10, size=384, seed=2)
    uneven = (img + np.linspace(0, 1500, img.shape[1])[None, :]).astype(np.uint16)
    s = suggest(np.iinfo(np.uint16).max - uneven)
    assert s.polarity == "dark" and s.background_unevenness > 1
    assert s.params.background == "none"  # the pipeline's top-hat keeps bright objects only
    assert s.params.threshold_method == "local" and s.params.offset > 0


# --- the settings themselves ----------------------------------------------------------------


def test_sizes_scale_with_the_diameter():
    small, large = suggest(nuclei(5)[0]).params, suggest(nuclei(20)[0]).params
    for name in ("sigma", "min_size", "max_size", "block_size", "distance_sigma", "h"):
        assert getattr(large, name) > getattr(small, name), name
    s = suggest(nuclei(10)[0])
    area = np.pi * (s.diameter_px / 2) ** 2
    assert s.params.min_size == pytest.approx(area / 5, rel=0.05)  # a fifth of a nucleus
    assert s.params.keep_unseeded and s.params.seed_method == "h_maxima"
    assert s.params.block_size % 2 == 1


def test_suggested_params_round_trip_through_json_with_identical_labels(sample):
    s = suggest(sample)
    p = s.params
    again = Params.from_json(p.to_json())
    assert again == p
    np.testing.assert_array_equal(segment(sample, again).labels, segment(sample, p).labels)
    assert segment(sample, p).labels.dtype == np.uint32


def test_suggest_is_deterministic(sample):
    a, b = suggest(sample), suggest(sample.copy())
    assert a == b


def test_reasons_and_record_are_plain(sample):
    s = suggest(sample)
    assert s.measured and len(s.reasons) >= 3
    assert all(isinstance(r, str) and r for r in s.reasons)
    assert f"{s.diameter_px:.0f} px across" in s.reasons[0]
    record = s.record()
    assert record["suggest_polarity"] == "bright" and record["suggest_measured"] is True
    json.dumps(record)  # plain numbers and strings only, ready for a CSV row
    assert set(record) == {
        "suggest_measured", "suggest_diameter_px", "suggest_polarity", "suggest_contrast", "suggest_noise",
        "suggest_background_unevenness", "suggest_separability", "suggest_bright_debris", "suggest_hole_share",
    }


# --- images with nothing to measure: defaults with a reason, never an exception ------------------


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.full((64, 64), 700, np.uint16), id="constant"),
        pytest.param(np.pad(np.full((63, 64), 700, np.uint16), ((0, 1), (0, 0)), constant_values=701),
                     id="constant-ish"),
        pytest.param(np.random.default_rng(0).normal(1000, 20, (256, 256)).astype(np.uint16), id="noise"),
        pytest.param(np.random.default_rng(1).poisson(3, (200, 300)).astype(np.uint8), id="dim-noise"),
        pytest.param(np.arange(25, dtype=np.uint16).reshape(5, 5), id="tiny"),
        pytest.param(np.array([[0, 1] * 20, [1, 0] * 20], np.uint8), id="two-rows"),
        pytest.param(np.full((32, 32), np.nan, np.float32), id="nan"),
    ],
)
def test_nothing_to_measure_gives_defaults_with_a_reason(image):
    s = suggest(image)
    assert not s.measured
    assert s.params == Params()
    assert len(s.reasons) == 1 and "default" in s.reasons[0]
    assert s.diameter_px is None


def test_not_a_2d_image_raises_a_clear_error():
    with pytest.raises(ImageReadError, match="2-D"):
        suggest(np.zeros((3, 32, 32), np.uint16))


# --- real images with ground truth (../shared/data) ----------------------------------------------


def _read_labels(path) -> np.ndarray:
    labels = tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))
    return labels.astype(np.int64)


@pytest.mark.parametrize(
    "image_glob, mask_glob",
    [
        ("stardist_pkg/images/img2d.tif", "stardist_pkg/masks/img2d.tif"),
        ("bobiac_course/images/u2os_hoechst_003.tif", "bobiac_course/masks/u2os_hoechst_003.png"),
    ],
)
def test_real_images_diameter_and_f1_better_than_the_defaults(image_glob, mask_glob):
    image = tifffile.imread(require_shared(image_glob)[0])
    truth = _read_labels(require_shared(mask_glob)[0])
    s = suggest(image)
    assert s.diameter_px == pytest.approx(median_diameter(truth), rel=0.2)
    suggested = f1_at_iou50(segment(image, s.params).labels, truth)
    default = f1_at_iou50(segment(image, Params()).labels, truth)
    assert suggested > default
    assert suggested > 0.85  # benchmarks/quality.py: about 0.88 (StarDist) and 0.94 (BoBiAC)


def test_real_image_with_signed_offset_is_measured():
    """ImageJ's signed-16-bit offset (values ~33,000-36,000): only differences count."""
    image = tifffile.imread(require_shared("bobiac_course/images/bg_corr_nuclei_07.tif")[0])
    s = suggest(image)
    assert s.measured and s.polarity == "bright"
    assert 10 < s.diameter_px < 200
    assert segment(image, s.params).count > 10
