"""StyleConfig: defaults, presets, validation (each error names its field), round trips, derived values."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import fields

import pytest

from stylize import PRESETS, ConfigError, StyleConfig
from stylize.config import field_info

STYLE_DEFAULT = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}


def assert_config_error(field: str, **options) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        StyleConfig(**options)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    return caught.value


# ---------------------------------------------------------------- defaults and presets

def test_the_defaults_are_the_papers_layers_and_weights():
    config = StyleConfig()
    assert dict(config.content_layers) == {"relu4_2": 1.0}
    assert dict(config.style_layers) == STYLE_DEFAULT
    assert (config.size, config.scales, config.optimizer, config.init) == (512, 3, "lbfgs", "palette")
    assert config.layer_normalisation == "balanced"
    assert config.seed is None and config.style_blend == () and config.device == "auto"


def test_each_config_gets_its_own_copy_of_the_default_layers():
    config = StyleConfig()
    with pytest.raises(TypeError):
        config.style_layers["relu1_1"] = 5.0  # read-only
    assert dict(StyleConfig().style_layers) == STYLE_DEFAULT


def test_it_copies_the_layer_dict_it_is_given():
    layers = {"relu2_1": 1.0}
    config = StyleConfig(style_layers=layers)
    layers["relu2_1"] = 7.0
    assert config.style_layers["relu2_1"] == 1.0


def test_a_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        StyleConfig().size = 64


def test_the_balanced_preset_is_the_defaults():
    assert StyleConfig.preset("balanced") == StyleConfig()


@pytest.mark.parametrize("name", ["fast", "quality"])
def test_a_preset_sets_its_values_and_keeps_the_other_defaults(name):
    config = StyleConfig.preset(name)
    for key, value in PRESETS[name].items():
        assert getattr(config, key) == value
    assert config.style_weight == StyleConfig().style_weight
    assert StyleConfig.preset("fast").size == 256 and StyleConfig.preset("quality").size == 1024


def test_overrides_win_over_the_preset():
    config = StyleConfig.preset("quality", size=128, seed=3)
    assert (config.size, config.seed, config.scales) == (128, 3, PRESETS["quality"]["scales"])
    assert StyleConfig.from_dict({"size": 96}, preset="fast") == StyleConfig.preset("fast", size=96)


def test_an_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        StyleConfig.preset("turbo")
    assert caught.value.field == "preset" and "fast" in str(caught.value)


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("field, value", [
    ("size", 31), ("size", 4097), ("iterations", -1), ("iterations", 5001), ("coarse_iterations", -1),
    ("scales", 0), ("scales", 7), ("content_weight", -0.1), ("content_weight", 1e7), ("style_weight", -1.0),
    ("tv_weight", -1e-9), ("style_scale", 0.05), ("style_scale", 4.5), ("seed", -1), ("seed", 2**32),
    ("learning_rate", 0.0), ("learning_rate", 1.5),
])
def test_an_out_of_range_value_names_its_field(field, value):
    error = assert_config_error(field, **{field: value})
    assert str(value) in str(error)


def bound_cases():
    """Just outside every declared bound, so a new bounded option is covered without editing this file."""
    for f in fields(StyleConfig):
        low, high = f.metadata.get("min"), f.metadata.get("max")
        step = 1 if f.type in ("int", "int | None") else None
        if low is not None:
            yield f.name, low - step if step else low - max(abs(low) / 2, 1e-3)
        if high is not None:
            yield f.name, high + step if step else high * 1.5 + 1


@pytest.mark.parametrize("field, value", list(bound_cases()))
def test_every_declared_bound_is_enforced(field, value):
    assert_config_error(field, **{field: value})


def test_values_on_the_bounds_are_accepted():
    StyleConfig(size=32, scales=1, iterations=0, seed=0, content_weight=0.0, style_scale=4.0)
    StyleConfig(size=4096, scales=6, iterations=5000, seed=2**32 - 1, learning_rate=1.0)


@pytest.mark.parametrize("field, value", [
    ("size", "64"), ("size", 64.0), ("size", True), ("iterations", None), ("seed", 1.5), ("seed", "7"),
    ("seed", False), ("content_weight", "1"), ("style_weight", True), ("tv_weight", None),
    ("normalize_content", 1), ("normalize_content", "yes"), ("optimizer", None), ("device", 0), ("weights", None),
])
def test_a_value_of_the_wrong_type_names_its_field(field, value):
    assert_config_error(field, **{field: value})


@pytest.mark.parametrize("field", ["content_weight", "style_weight", "tv_weight", "style_scale", "learning_rate"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_name_their_field(field, value):
    assert_config_error(field, **{field: value})


@pytest.mark.parametrize("field, value", [
    ("preserve_colors", "colour"), ("init", "noise"), ("optimizer", "sgd"), ("pooling", "min"),
    ("precision", "fp16"),
])
def test_a_value_outside_the_choices_names_its_field_and_the_choices(field, value):
    error = assert_config_error(field, **{field: value})
    for choice in field_info(field).metadata["choices"]:
        assert choice in str(error)


@pytest.mark.parametrize("field", ["content_layers", "style_layers"])
@pytest.mark.parametrize("layers", [
    {"relu6_1": 1.0}, {"fc7": 1.0}, {"relu1_1": -0.5}, {"relu1_1": 1.01}, {"relu1_1": math.nan},
    {"relu1_1": math.inf}, {"relu1_1": "1"}, {"relu1_1": True}, {"relu1_1": None}, ["relu1_1"], "relu1_1",
])
def test_a_bad_layer_mapping_names_its_field(field, layers):
    assert_config_error(field, **{field: layers})


@pytest.mark.parametrize("field", ["content_layers", "style_layers"])
def test_a_layer_weight_is_a_share_up_to_1_when_balanced_and_up_to_1000_with_the_seed_formula(field):
    assert "between 0 and 1" in str(assert_config_error(field, **{field: {"relu1_1": 5.0}}))
    assert StyleConfig(**{field: {"relu1_1": 5.0}}, layer_normalisation="seed").to_dict()[field] == {"relu1_1": 5.0}
    assert "between 0 and 1000" in str(
        assert_config_error(field, **{field: {"relu1_1": 1001.0}}, layer_normalisation="seed"))
    assert_config_error("layer_normalisation", layer_normalisation="equal")


def test_an_unknown_layer_is_named_in_the_message():
    assert "relu9_9" in str(assert_config_error("style_layers", style_layers={"relu9_9": 1.0}))


def test_every_layer_weight_zero_is_refused():
    assert_config_error("style_layers", content_layers={"relu4_2": 0.0}, style_layers={"relu1_1": 0.0})
    assert_config_error("style_layers", content_layers={}, style_layers={})


@pytest.mark.parametrize("blend", [(1.0, math.nan), (1.0, math.inf), (1.0, -1.0), (0.0, 0.0)])
def test_bad_blend_weights_name_the_style_blend_field(blend):
    assert_config_error("style_blend", style_blend=blend)


@pytest.mark.parametrize("blend", ["12", 3, None, [True, 1.0], ["1", "2"]])
def test_blend_weights_of_the_wrong_type_name_the_style_blend_field(blend):
    assert_config_error("style_blend", style_blend=blend)


@pytest.mark.parametrize("device", ["gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda 0", "mps", ""])
def test_a_bad_device_string_names_the_device_field(device):
    assert_config_error("device", device=device)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_strings_are_checked_without_touching_a_gpu(device):
    assert StyleConfig(device=device).device == device


# ---------------------------------------------------------------- from_dict and to_dict

def test_from_dict_refuses_an_unknown_option_by_name():
    with pytest.raises(ConfigError) as caught:
        StyleConfig.from_dict({"size": 64, "colour": "blue"})
    assert caught.value.field == "colour" and "unknown option" in str(caught.value)


def test_from_dict_refuses_a_non_mapping():
    with pytest.raises(ConfigError) as caught:
        StyleConfig.from_dict(["size", 64])
    assert caught.value.field == "params"


def test_from_dict_validates_like_the_constructor():
    with pytest.raises(ConfigError) as caught:
        StyleConfig.from_dict({"scales": "3"})
    assert caught.value.field == "scales"


def test_to_dict_then_from_dict_through_json_gives_an_equal_config():
    config = StyleConfig(size=128, scales=2, seed=42, style_blend=(1, 3), content_weight=5, preserve_colors="luminance",
                         style_layers={"relu1_1": 0.5, "relu3_1": 2}, normalize_content=False, init="random",
                         layer_normalisation="seed")
    data = json.loads(json.dumps(config.to_dict()))
    assert StyleConfig.from_dict(data) == config
    assert data["style_blend"] == [1.0, 3.0] and data["style_layers"] == {"relu1_1": 0.5, "relu3_1": 2.0}
    assert set(data) == {f.name for f in fields(StyleConfig)}


def test_the_defaults_round_trip_too():
    assert StyleConfig.from_dict(StyleConfig().to_dict()) == StyleConfig()


def test_configs_differing_in_one_option_are_not_equal():
    assert StyleConfig(seed=1) != StyleConfig(seed=2)
    assert StyleConfig(style_layers={"relu1_1": 1}) != StyleConfig(style_layers={"relu1_1": 0.5})


# ---------------------------------------------------------------- derived values

def test_scale_sizes_double_from_coarse_to_fine():
    assert StyleConfig(size=512, scales=3).scale_sizes() == [128, 256, 512]
    assert StyleConfig(size=512, scales=1).scale_sizes() == [512]


@pytest.mark.parametrize("size, scales, expected", [
    (512, 6, [64, 128, 256, 512]), (128, 3, [64, 128]), (100, 3, [100]), (64, 2, [64]), (48, 3, [48]),
])
def test_scale_sizes_drop_scales_below_64_px(size, scales, expected):
    assert StyleConfig(size=size, scales=scales).scale_sizes() == expected


def test_only_the_last_scale_runs_the_full_size_iterations():
    config = StyleConfig(iterations=7, coarse_iterations=30)
    assert [config.iterations_at(i, 3) for i in range(3)] == [30, 30, 7]


def test_layers_lists_the_weighted_content_and_style_layers_once():
    config = StyleConfig(content_layers={"relu4_2": 1, "relu2_1": 0.5},
                         style_layers={"relu1_1": 0.0, "relu2_1": 1, "relu5_1": 1})
    assert config.layers() == ["relu4_2", "relu2_1", "relu5_1"]


def test_blend_weights_are_equal_by_default_and_normalised_when_given():
    assert StyleConfig().blend_weights(4) == [0.25] * 4
    assert StyleConfig(style_blend=(1, 3)).blend_weights(2) == [0.25, 0.75]
    assert StyleConfig(style_blend=(2.0, 0.0, 2.0)).blend_weights(3) == [0.5, 0.0, 0.5]


def test_blend_weights_refuse_a_count_unlike_the_style_images():
    with pytest.raises(ConfigError) as caught:
        StyleConfig(style_blend=(1, 2, 3)).blend_weights(2)
    assert caught.value.field == "style_blend" and "3 weights for 2" in str(caught.value)


def test_every_option_has_help_text():
    assert all(f.metadata["help"] for f in fields(StyleConfig))
