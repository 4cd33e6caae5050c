"""Params: the course's defaults, validation naming the setting, and the settings JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from segmentation.params import (
    AUTO_THRESHOLD_METHODS,
    HELP,
    MAX_CHANNEL_NAME,
    MAX_CHANNELS,
    MAX_QUERY_VALUE,
    MAX_SETTINGS_BYTES,
    SETTINGS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STAGE_FIELDS,
    THRESHOLD_METHODS,
    Params,
)


def test_defaults_are_the_course_recipe():
    p = Params()
    assert p.filter == "gaussian" and p.sigma == 1
    assert p.background == "none"
    assert p.threshold_method == "otsu" and p.objects == "bright"
    assert p.min_size == 10
    assert p.closing_radius == 1 and p.opening_radius == 0 and p.fill_holes is False
    assert p.split == "watershed" and p.seed_method == "peak_local_max"
    assert p.footprint == 25 and p.min_distance == 10
    assert p.distance_sigma == 0 and p.keep_unseeded is False
    assert p.max_size == 0 and p.exclude_border is False
    assert p.channel is None and p.z is None and p.t is None and p.pixel_size_um is None


@pytest.mark.parametrize(
    "changes, setting",
    [
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"block_size": 50}, "block_size"),
        ({"block_size": 1}, "block_size"),
        ({"threshold_method": "kittler"}, "threshold_method"),
        ({"filter": "bilateral"}, "filter"),
        ({"background": "ball"}, "background"),
        ({"objects": "grey"}, "objects"),
        ({"split": "yes"}, "split"),
        ({"seed_method": "random"}, "seed_method"),
        ({"min_size": True}, "min_size"),  # bool where a whole number is expected
        ({"footprint": True}, "footprint"),
        ({"min_size": 2.5}, "min_size"),
        ({"min_size": -1}, "min_size"),
        ({"footprint": 0}, "footprint"),
        ({"min_distance": 0}, "min_distance"),
        ({"closing_radius": "1"}, "closing_radius"),
        ({"channel": True}, "channel"),
        ({"channel": -1}, "channel"),
        ({"t": 1.0}, "t"),
        ({"z": "min"}, "z"),
        ({"z": -2}, "z"),
        ({"fill_holes": 1}, "fill_holes"),
        ({"exclude_border": "yes"}, "exclude_border"),
        ({"keep_unseeded": None}, "keep_unseeded"),
        ({"h": 0.0}, "h"),
        ({"background_radius": 0.5}, "background_radius"),
        ({"threshold_value": "high"}, "threshold_value"),
        ({"threshold_value": float("inf")}, "threshold_value"),  # would write non-JSON 'Infinity'
        ({"threshold_value": float("nan")}, "threshold_value"),
        ({"pixel_size_um": 0.0}, "pixel_size_um"),
        ({"pixel_size_um": -0.1}, "pixel_size_um"),
        ({"threshold_method": "manual"}, "threshold_value"),  # manual with no value
    ],
)
def test_invalid_value_raises_valueerror_naming_the_setting(changes, setting):
    with pytest.raises(ValueError, match=setting):
        Params(**changes)


def test_replace_validates_too():
    p = Params()
    assert p.replace(sigma=2.5).sigma == 2.5
    with pytest.raises(ValueError, match="block_size"):
        p.replace(block_size=4)
    # the original is untouched (frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.sigma = 3.0  # type: ignore[misc]
    assert p.sigma == 1.0


def test_valid_edge_values_are_accepted():
    p = Params(
        threshold_method="manual", threshold_value=0, z="max", channel=0, t=3, sigma=0.0,
        closing_radius=0, min_size=0, block_size=3, pixel_size_um=0.65, offset=-5.5,
    )
    assert p.z == "max" and p.threshold_value == 0 and p.block_size == 3
    # a whole number is fine where a float is expected
    assert Params(sigma=2).sigma == 2


@pytest.mark.parametrize(
    "params",
    [
        Params(),
        Params(z="max", channel=1, t=0, pixel_size_um=0.325),
        Params(
            background="rolling_ball", background_radius=30.0, filter="median", filter_size=5,
            threshold_method="manual", threshold_value=1234.5, objects="dark", min_size=25,
            closing_radius=0, opening_radius=2, fill_holes=True, max_hole_size=40, split="none",
            exclude_border=True, max_size=5000,
        ),
        Params(
            threshold_method="local", block_size=101, offset=-3.25, seed_method="h_maxima", h=1.5,
            distance_sigma=2.0, keep_unseeded=True, z=4,
        ),
    ],
    ids=["defaults", "plane", "many", "local-hmaxima"],
)
def test_json_round_trip(params):
    text = params.to_json()
    doc = json.loads(text)
    assert doc["schema"] == SCHEMA_NAME and doc["version"] == SCHEMA_VERSION
    back = Params.from_json(text)
    assert back == params
    assert Params.from_json(text.encode("utf-8")) == params
    assert Params.from_dict(params.to_dict()) == params


def _doc(**params) -> str:
    return json.dumps({"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "params": params})


def test_from_json_unknown_key_names_it():
    with pytest.raises(ValueError, match="unknown setting.*'sigmaa'"):
        Params.from_json(_doc(sigmaa=2))


def test_from_json_wrong_type_names_the_setting():
    with pytest.raises(ValueError, match="min_size"):
        Params.from_json(_doc(min_size="ten"))
    with pytest.raises(ValueError, match="block_size"):
        Params.from_json(_doc(block_size=51.0))  # a float where a whole number is expected
    with pytest.raises(ValueError, match="fill_holes"):
        Params.from_json(_doc(fill_holes="true"))


def test_from_json_params_not_an_object():
    text = json.dumps({"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "params": [1, 2]})
    with pytest.raises(ValueError, match="JSON object"):
        Params.from_json(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"schema": "something-else", "version": 1, "params": {}}', "not a settings file"),
        ('{"version": 1, "params": {}}', "not a settings file"),
        ('[1, 2, 3]', "not a settings file"),
        (f'{{"schema": "{SCHEMA_NAME}", "version": {SCHEMA_VERSION + 1}, "params": {{}}}}', "version.*not supported"),
        (f'{{"schema": "{SCHEMA_NAME}", "version": "1", "params": {{}}}}', "version.*not supported"),
        (f'{{"schema": "{SCHEMA_NAME}", "params": {{}}}}', "version.*not supported"),
        ("sigma = 2", "not valid JSON"),
        ("", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
    ids=["other-schema", "no-schema", "list", "newer-version", "string-version", "no-version",
         "not-json", "empty", "binary"],
)
def test_from_json_rejects_with_clear_valueerror(text, message):
    with pytest.raises(ValueError, match=message):
        Params.from_json(text)


def test_every_field_belongs_to_exactly_one_stage_and_has_help():
    names = [f.name for f in dataclasses.fields(Params)]
    staged = [name for fields in STAGE_FIELDS.values() for name in fields]
    assert sorted(staged) == sorted(names)
    assert set(HELP) == set(names)
    assert all(HELP[n].strip() for n in names)


def test_stage_key_changes_only_for_its_own_fields():
    a = Params()
    b = a.replace(min_distance=5)
    assert a.stage("split") != b.stage("split")
    for stage in ("plane", "filter", "threshold", "refine", "objects", "measure"):
        assert a.stage(stage) == b.stage(stage)
    c = a.replace(exclude_border=True)
    assert a.stage("objects") != c.stage("objects") and a.stage("split") == c.stage("split")
    # usable as a cache key: an equal copy finds the same entry
    assert {a: 1}[Params()] == 1 and b not in {a: 1}


def test_threshold_methods_registry():
    names = list(THRESHOLD_METHODS)
    assert names[0] == "manual" and names[-1] == "local"
    assert {"otsu", "li", "triangle", "yen", "isodata", "mean", "minimum"} <= set(AUTO_THRESHOLD_METHODS)
    for name, method in THRESHOLD_METHODS.items():
        assert method.label and method.help and method.code, name
        assert (method.func is not None) == (name in AUTO_THRESHOLD_METHODS)


def test_every_setting_carries_its_range_next_to_its_validation():
    for name, spec in SETTINGS.items():
        assert spec.label and spec.help.strip() and spec.stage in STAGE_FIELDS, name
        if spec.ui is not None:  # the slider's usual range lies inside the valid range
            lo, hi = spec.ui
            assert spec.low <= lo < hi and (spec.high is None or hi <= spec.high), name
            assert spec.step, name
            Params().replace(**{name: type(getattr(Params(), name))(hi)})  # the slider's top is valid
        if spec.kind == "choice":
            assert getattr(Params(), name) in spec.choices, name
            assert all(m.label and m.help for m in spec.choices.values()), name


def test_a_valid_value_outside_the_slider_widens_it_and_an_invalid_one_is_refused():
    # the settings of the bug report: valid, but above the sliders' usual ranges
    loaded = Params(closing_radius=20, min_size=5000, background="tophat", background_radius=240.0, h=30.0,
                    seed_method="h_maxima", threshold_method="local", block_size=501)
    for name in ("closing_radius", "min_size", "background_radius", "h", "block_size"):
        value = getattr(loaded, name)
        lo, hi = SETTINGS[name].slider_range(value)
        assert lo <= value <= hi and hi == value, name
        assert SETTINGS[name].slider_range(None) == SETTINGS[name].ui
    with pytest.raises(ValueError, match="closing_radius"):
        Params(closing_radius=int(SETTINGS["closing_radius"].high) + 1)


@pytest.mark.parametrize("changes", [{"filter_size": 501}, {"background_radius": 1000.0}, {"sigma": 100.0}])
def test_settings_that_cannot_be_useful_are_out_of_range(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        Params(**changes)


def test_stage_view_refuses_settings_of_other_stages():
    view = Params(sigma=2.0).only("filter")
    assert view.sigma == 2.0 and view.filter == "gaussian"
    with pytest.raises(AttributeError, match="filter stage reads min_size"):
        view.min_size
    both = Params().only("threshold", "measure")
    assert both.objects == "bright" and both.pixel_size_um is None


def test_stage_key_leaves_out_settings_not_in_use():
    g = Params(filter="gaussian", sigma=2.0)
    assert g.replace(filter_size=9).stage("filter") == g.stage("filter")
    assert g.replace(sigma=3.0).stage("filter") != g.stage("filter")
    assert Params(threshold_value=5.0).stage("threshold") == Params().stage("threshold")  # only 'manual' uses it
    assert Params(seed_method="h_maxima", footprint=9).stage("split") == Params(seed_method="h_maxima").stage("split")


def test_describe_lists_every_setting_in_use_and_every_switch_that_is_on():
    lines = Params(background="rolling_ball", filter="median", filter_size=5, threshold_method="manual",
                   threshold_value=100.5, closing_radius=0, fill_holes=True, seed_method="h_maxima",
                   keep_unseeded=True, exclude_border=True, pixel_size_um=0.65, z="max", channel=1).describe()
    text = "\n".join(lines)
    for words in ("channel 1", "maximum projection", "rolling ball background, radius 50 px", "Median",
                  "kernel size 5 px", "Manual, cutoff 100.5", "closing radius 0 px", "fill holes", "h-maxima",
                  "h 2 px", "keep objects without a seed", "remove objects touching the border",
                  "pixel size 0.65 µm"):
        assert words in text, words
    assert "sigma" not in text and "footprint" not in text  # not in use with these choices
    assert [line.split(":")[0] for line in lines] == ["Plane", "Filter", "Threshold", "Refine", "Split",
                                                      "Objects", "Measure"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 5000 + "]" * 5000, "nested far too deeply"),
        ('{"schema": "nuclei-segmentation-settings", "version": 1, "params": ' + "[" * 20 + "]" * 20 + "}",
         "nested far too deeply"),
        (" " * (MAX_SETTINGS_BYTES + 1), "a settings file of this app is a few hundred bytes"),
    ],
    ids=["deep", "deep-inside", "huge"],
)
def test_settings_json_is_bounded_in_size_and_depth(text, message):
    with pytest.raises(ValueError, match=message):
        Params.from_json(text)


def test_many_unknown_keys_give_a_short_message():
    values = {f"key{i}": i for i in range(10_000)}
    with pytest.raises(ValueError) as info:
        Params.from_dict(values)
    assert len(str(info.value)) < 1000 and "9,995 more" in str(info.value)


def test_every_positive_call_survives_a_link_at_the_longest():
    names = [f"{i:02d}".ljust(MAX_CHANNEL_NAME, "x") for i in range(MAX_CHANNELS)]
    params = Params(positive={name: -1.1125369292536007e-308 * (i + 1) for i, name in enumerate(names)})
    back, problems = Params.from_query(params.to_query())
    assert problems == [] and back == params


@pytest.mark.parametrize("name, text", [
    ("sigma", "2." + "0" * (MAX_QUERY_VALUE - 2) + "5"),  # cut at the limit it would read 2.0, a valid sigma
    ("min_size", "1" * (MAX_QUERY_VALUE + 1)),
    ("positive", "EdU:" + "1" * 10_000),
])
def test_a_value_too_long_for_a_link_is_named_and_never_cut_to_another_value(name, text):
    params, problems = Params.from_query({name: text})
    assert getattr(params, name) == getattr(Params(), name)
    assert len(problems) == 1 and problems[0].startswith(f"{name}: longer than")
