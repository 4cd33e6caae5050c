"""Property-based tests: any valid Params on any small image gives sound labels; invalid ones are refused by name.

The strategies are built from the settings' own specs (``params.SETTINGS``), so a new setting is covered
without touching this file.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from segmentation import Params, segment
from segmentation.errors import SegmentationError
from segmentation.params import SETTINGS

# Settings whose full range is valid but slow on every example; their upper ends are covered by the
# range tests of test_params.py and by the Params checks below.
FAST_UPPER = {"background_radius": 20.0, "filter_size": 15, "block_size": 201, "closing_radius": 8,
              "opening_radius": 8}


def value_strategy(name: str):
    spec = SETTINGS[name]
    if spec.kind == "choice":
        return st.sampled_from(list(spec.choices))
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        high = min(spec.high, FAST_UPPER.get(name, spec.high), 10**6)
        ints = st.integers(int(spec.low), int(high))
        return ints.map(lambda v: v if v % 2 else v + 1).filter(lambda v: v <= spec.high) if spec.odd else ints
    if spec.kind == "float":
        high = min(spec.high, FAST_UPPER.get(name, spec.high))
        low = max(spec.low, -1e4)
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if spec.kind == "pixel_size":
        return st.none() | st.floats(1e-3, spec.high)
    if spec.kind == "cutoffs":
        names = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
        return st.dictionaries(names, st.floats(-1e6, 1e6, allow_nan=False), max_size=3)
    return st.none()  # plane choice (a 2-D image has none); the cutoff is drawn from the image below


@st.composite
def images(draw):
    h, w = draw(st.integers(8, 48)), draw(st.integers(8, 48))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    blobs = ndi.gaussian_filter((rng.random((h, w)) < 0.05).astype(float), draw(st.floats(0.5, 3.0)))
    img = blobs / max(blobs.max(), 1e-9) * draw(st.floats(10, 3000)) + rng.normal(50, 5, (h, w))
    img = np.clip(img, 0, None)
    if img.max() == img.min():
        img[0, 0] += 1
    return img.astype(dtype)


@st.composite
def valid_params(draw, image):
    values = {name: draw(value_strategy(name)) for name in SETTINGS}
    if values["threshold_method"] == "manual":
        values["threshold_value"] = draw(st.floats(float(image.min()), float(image.max())))
    return Params(**values)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_valid_settings_on_any_small_image_give_sound_labels(data):
    image = data.draw(images())
    params = data.draw(valid_params(image))
    try:
        result = segment(image, params)
    except SegmentationError:
        return  # e.g. 'minimum' finds no cutoff: a clear message, not a crash
    labels = result.labels
    assert labels.dtype == np.uint32 and labels.shape == image.shape
    n = int(labels.max())
    assert np.array_equal(np.setdiff1d(np.unique(labels), [0]), np.arange(1, n + 1)), "labels are 1..N, no gaps"
    assert not (labels > 0)[~(result.mask | result.binary)].any(), "labels lie inside the mask"
    assert len(result.measurements) == n
    assert result.measurements["label"].tolist() == list(range(1, n + 1))


def invalid_value(name: str):
    spec = SETTINGS[name]
    wrong_type = st.sampled_from(["x", [1], {"a": 1}])
    if spec.kind == "choice":
        return wrong_type | st.text(min_size=1).filter(lambda v: v not in spec.choices)
    if spec.kind == "bool":
        return wrong_type | st.sampled_from([0, 1, "true", None])
    if spec.kind in ("int", "float"):
        out = wrong_type | st.just(float("nan")) | st.just(True)
        if spec.low is not None:
            out = out | st.floats(spec.low - abs(spec.low) - 1e9, spec.low, exclude_max=True, allow_nan=False)
        if spec.high is not None:
            out = out | st.floats(spec.high, spec.high + abs(spec.high) + 1e9, exclude_min=True, allow_nan=False)
        if spec.kind == "int":
            out = out | st.floats(spec.low + 0.25, spec.low + 0.75)
        if spec.odd:
            out = out | st.just(int(spec.low) + 1)
        return out
    if spec.kind in ("plane", "z"):
        return st.sampled_from([-1, 1.5, True, "min"])
    if spec.kind == "cutoff":
        return st.sampled_from([float("nan"), float("inf"), "x"])
    if spec.kind == "cutoffs":
        return st.sampled_from([{"bad name": 1.0}, {"EdU": float("nan")}, {"EdU": "x"}, {"": 1.0},
                                {f"c{i}": 1.0 for i in range(40)}, 5, "EdU"])
    return st.sampled_from([0.0, -1.0, float("nan"), spec.high * 2])  # pixel size


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_invalid_settings_always_raise_a_valueerror_naming_the_setting(data):
    name = data.draw(st.sampled_from(list(SETTINGS)))
    value = data.draw(invalid_value(name))
    with pytest.raises(ValueError, match=name):
        Params(**{name: value})


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_valid_settings_survive_a_link(data):
    values = {name: data.draw(value_strategy(name)) for name in SETTINGS}
    values["channel"] = data.draw(st.none() | st.integers(0, 5))
    values["z"] = data.draw(st.none() | st.just("max") | st.integers(0, 9))
    if values["threshold_method"] == "manual":
        values["threshold_value"] = data.draw(st.floats(-1e6, 1e6, allow_nan=False))
    params = Params(**values)
    back, problems = Params.from_query(params.to_query())
    assert back == params and problems == []
