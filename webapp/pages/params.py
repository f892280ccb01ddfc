"""How StyleConfig's options become inputs of the new-job page: one form field per option with
its label, help, default, bounds and choices read from the field metadata, the presets as
the page's script fills them in, and where each option's error is shown.

Nothing here holds a default or a bound of its own: stylize/config.py is their one home.
"""

from __future__ import annotations

import math
from dataclasses import MISSING
from typing import Any, Mapping

from django import forms

from stylize.config import LAYER_ROLES, MAX_LAYER_WEIGHTS, PRESETS, StyleConfig, field_info
from stylize.vgg import LAYER_INDEX, LAYER_NAMES

from ..jobs.lifecycle import NOT_OFFERED
from ..jobs.present import CHOICE_LABELS, label

RELU_LAYERS = tuple(name for name in LAYER_NAMES if name.startswith("relu"))

# The options that are one input each on the page (same name as in StyleConfig).
PARAM_FIELDS = ("size", "iterations", "coarse_iterations", "scales", "content_weight", "style_weight",
                "tv_weight", "style_scale", "style_views", "layer_normalisation", "preserve_colors", "init",
                "seed", "optimizer", "learning_rate", "pooling", "normalize_content", "precision")
# ConfigError.field / JobError.field -> the input that shows the message.
ERROR_FIELDS = {**{name: name for name in PARAM_FIELDS}, "content_layers": "content_layer",
                "style_layers": "style_layers", "style_blend": "style_blend", "content": "content_file",
                "styles": "style_files"}
# The options a preset sets (the others keep what the person chose).
PRESET_FIELDS = tuple(sorted({key for preset in PRESETS.values() for key in preset}))


def default_params() -> dict[str, Any]:
    return StyleConfig().to_dict()


def preset_params() -> dict[str, dict[str, Any]]:
    """{preset: its full params}, for the page's script that fills the fields."""
    return {name: StyleConfig.preset(name).to_dict() for name in PRESETS}


def matching_preset(params: Mapping[str, Any]) -> str:
    """The preset whose options these params have, or "" (custom)."""
    for name, full in preset_params().items():
        if all(params.get(key) == full[key] for key in PRESET_FIELDS):
            return name
    return ""


def choices_of(name: str) -> list[tuple[str, str]]:
    return [(value, CHOICE_LABELS.get((name, value), value)) for value in field_info(name).metadata["choices"]
            if (name, value) not in NOT_OFFERED]


def bounds_of(name: str) -> tuple[Any, Any]:
    """(min, max) of a numeric option, None where it has none."""
    meta = field_info(name).metadata
    return meta.get("min"), meta.get("max")


def layer_order(names) -> list[str]:
    """Layer names shallow to deep (VGG19's order)."""
    return sorted(dict.fromkeys(names), key=LAYER_INDEX.__getitem__)


def page_layers() -> dict[str, Any]:
    """What the page's script needs of the layers: every relu layer, shallow to deep (where a
    row that is added goes), what each style layer carries (shown under its name), and the
    largest λ of each layer_normalisation (the number inputs' max follows the choice)."""
    return {"order": list(RELU_LAYERS), "roles": dict(LAYER_ROLES), "max_weights": dict(MAX_LAYER_WEIGHTS)}


def layer_shares(weights: Mapping[str, Any]) -> dict[str, str]:
    """{layer: its share of the style's influence, λ / Σλ, as people read it ("20 %")}; a weight
    that is not a number (yet) counts as 0. The page's script computes the same (new_job.js)."""
    values = {}
    for layer, weight in weights.items():
        try:
            number = float(weight)
        except (TypeError, ValueError):
            number = 0.0
        values[layer] = number if math.isfinite(number) and number > 0 else 0.0
    total = sum(values.values())
    return {layer: share_text(value / total if total > 0 else 0.0) for layer, value in values.items()}


def share_text(fraction: float) -> str:
    percent = round(fraction * 100, 6)  # 0.6 / 1.6 is 37.4999…: 38 %, as people count
    if percent == 0:
        return "0 %"
    if percent < 1:
        return "<1 %"
    return f"{math.floor(percent + 0.5)} %"  # halves up, as the script's Math.round


def config_field(name: str, *, high=None) -> forms.Field:
    """A form field for one StyleConfig option: label, help, default, bounds and choices from its metadata.

    The bounds become the inputs' min/max (the browser's own hints); the values
    themselves are checked by StyleConfig, whose messages are shown inline.
    """
    info = field_info(name)
    meta = info.metadata
    default = None if info.default is MISSING else info.default
    common = {"label": label(name), "help_text": meta["help"], "initial": default}
    if meta.get("choices"):
        return forms.ChoiceField(choices=choices_of(name), **common)
    kind = info.type if isinstance(info.type, str) else info.type.__name__
    if kind == "bool":
        return forms.BooleanField(required=False, **common)
    attrs = {}
    low, high = meta.get("min"), high if high is not None else meta.get("max")
    if low is not None:
        attrs["min"] = low
    if high is not None:
        attrs["max"] = high
    if kind in ("int", "int | None"):
        attrs["step"] = 1
        return forms.IntegerField(required=default is not None, widget=forms.NumberInput(attrs=attrs), **common)
    attrs["step"] = "any"
    return forms.FloatField(widget=forms.NumberInput(attrs=attrs), **common)


def fmt(number: float) -> str:
    return f"{number:g}"
