"""StyleConfig: the one home of every default, bound and preset of a stylization.

The CLI, the web form and the REST serializer all read their defaults, ranges
and help texts from the field metadata here, so they can never disagree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from .errors import ConfigError
from .vgg import LAYER_INDEX

STYLE_LAYER_ORDER = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}
# λ^[l] = 1/5 for each layer, the paper's w_l: with "balanced" normalisation each layer has the
# same say; the look measure (quality.py) counts every layer the same too.
DEFAULT_STYLE_LAYERS = {name: 0.2 for name in STYLE_LAYER_ORDER}
# What each style layer tends to carry in the result (shown beside its λ in the form).
LAYER_ROLES = {
    "relu1_1": "colour and fine grain",
    "relu2_1": "fine strokes and texture",
    "relu3_1": "brush strokes",
    "relu4_1": "motifs: swirls, patterns",
    "relu5_1": "large forms and composition",
}
MIN_SIZE, MAX_SIZE = 32, 4096
# A smaller view of the result (style_views) is looked at only while its long side is at least
# this. Views are for big results, where the deep layers see too little of the picture at once;
# at 512 px they see the painting's motifs whole already. In smaller views they see its objects
# whole and copy them: views of 256, 128 and 64 px put the Matisse's face into golden gate's sky,
# and a 256 px view of a 512 px result left it further from the painting at 256 px (README: The look).
MIN_VIEW_SIDE = 512
# β with balanced normalisation: every style term starts at β·λ^[l] (from the content) and the
# content term is a relative error, so β is the weight of "the painting's statistics" against
# "the photo's layout" directly. Tuned on the six classic pairs with the look measure (README).
STYLE_WEIGHT_BALANCED = 6.0
# Largest λ per normalisation: a share (0..1) when balanced; the seed's formula needed weights up
# to 1000 to give a shallow layer any say, and old jobs stored such weights.
MAX_LAYER_WEIGHTS = {"balanced": 1.0, "seed": 1e3}
# Jobs stored before the option existed ran with the seed's normalisation (migration 0005).
NORMALISATION_BEFORE_THE_OPTION = "seed"


def _opt(default, help: str, *, low=None, high=None, choices=None, **kw):
    meta = {"help": help, "min": low, "max": high, "choices": choices}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class StyleConfig:
    """Everything that decides a result (with the input images and the device)."""

    size: int = _opt(512, "Long side of the result in pixels.", low=MIN_SIZE, high=MAX_SIZE)
    # 60 + 60 + 40 (README: The look): moving iterations from the coarse scales to the full size
    # brought golden gate x matisse's content cost under the classic's with the other five pairs
    # still within their targets, in the same time (a fresh 512 px CLI run: 67 s against 67 s).
    iterations: int = _opt(40, "Optimiser iterations at the full size.", low=0, high=5000)
    coarse_iterations: int = _opt(
        60, "Iterations at each coarser scale (multi-scale only).", low=0, high=5000)
    scales: int = _opt(
        3, "Number of scales, coarse to fine, each twice the last; 1 = single scale as in the paper.",
        low=1, high=6)
    content_weight: float = _opt(1.0, "α: weight of the content cost.", low=0.0, high=1e6)
    style_weight: float = _opt(STYLE_WEIGHT_BALANCED, "β: weight of the style cost.", low=0.0, high=1e6)
    tv_weight: float = _opt(
        0.0, "Weight of the total-variation smoothness term (0 = off).", low=0.0, high=1e6)
    content_layers: Mapping[str, float] = _opt(
        DEFAULT_CONTENT_LAYERS, "Content layers and their weights, e.g. {'relu4_2': 1}.")
    style_layers: Mapping[str, float] = _opt(
        DEFAULT_STYLE_LAYERS, "Style layers and their weights λ, e.g. {'relu1_1': 0.2, ...}.")
    layer_normalisation: str = _opt(
        "balanced", "Balanced: each layer's cost is divided by the content photo's cost at that "
        "layer, so λ is the layer's share of the style's influence. Seed: the original formula, "
        "where deep layers outweigh shallow ones up to 100 000 times whatever λ says.",
        choices=("balanced", "seed"))
    style_blend: tuple[float, ...] = _opt(
        (), "Blend weights of several style images (empty = equal).")
    style_views: int = _opt(
        1, "Sizes the style cost sees the result at: 1 = as it is; 2 = also at half size; 3 = also at "
        f"a quarter; only views of {MIN_VIEW_SIDE} px and more are taken. Keeps the painting's large "
        f"motifs whole in results of {2 * MIN_VIEW_SIDE} px and more, where the network sees too little "
        "of the picture at once; each view adds about a quarter of the time.", low=1, high=3)
    style_scale: float = _opt(
        1.0, "Size of the style image relative to the result (by side).", low=0.1, high=4.0)
    preserve_colors: str = _opt(
        "none", "Keep the content's colours: recolour the style ('statistics') or "
        "transfer only luminance ('luminance').", choices=("none", "statistics", "luminance"))
    init: str = _opt(
        "palette", "Starting image: the content recoloured to the style's palette, each finer scale "
        "recoloured again (the content itself when preserve_colors is on); the content; random "
        "noise (the paper); or a given image.",
        choices=("palette", "content", "random", "image"))
    seed: int | None = _opt(None, "Random seed (empty = pick one and report it).", low=0, high=2**32 - 1)
    optimizer: str = _opt("lbfgs", "Optimiser.", choices=("lbfgs", "adam"))
    learning_rate: float = _opt(
        0.02, "Adam step size in image units (0..1); L-BFGS ignores it.", low=1e-5, high=1.0)
    pooling: str = _opt("max", "VGG19 pooling.", choices=("max", "avg"))
    normalize_content: bool = _opt(
        True, "Content cost as a mean over activations (α means the same at every size) "
        "instead of the paper's sum.")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N.")
    precision: str = _opt(
        "auto", "bf16 runs the convolutions in bfloat16 (Gram and costs stay fp32): about 2x "
        "faster on GPUs and on CPUs with AMX, a few % apart in quality; auto = fp32 (TF32 on GPUs).",
        choices=("auto", "fp32", "bf16"))
    weights: str = _opt(
        "original", "'original' (the bundled Caffe VGG19) or a torchvision VGG19 state-dict path.")

    def __post_init__(self):
        for f in fields(self):
            _check_field(self, f)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        top = MAX_LAYER_WEIGHTS[self.layer_normalisation]
        set_("content_layers", _layer_weights("content_layers", self.content_layers, top))
        set_("style_layers", _layer_weights("style_layers", self.style_layers, top))
        set_("style_blend", _blend_weights(self.style_blend))
        if any(not math.isfinite(w) or w < 0 for w in self.style_blend):
            raise ConfigError("style_blend", "weights must be finite and not negative")
        if self.style_blend and sum(self.style_blend) <= 0:
            raise ConfigError("style_blend", "at least one weight must be above 0")
        if not any(self.content_layers.values()) and not any(self.style_layers.values()):
            raise ConfigError("style_layers", "every layer weight is 0: nothing to optimise")
        _check_device(self.device)

    # -- conversions ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (stored with jobs and in result metadata)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["content_layers"] = dict(self.content_layers)
        out["style_layers"] = dict(self.style_layers)
        out["style_blend"] = list(self.style_blend)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, preset: str | None = None) -> "StyleConfig":
        """Validate untrusted params (JSON, form); unknown keys are errors, not silently dropped."""
        if not isinstance(data, Mapping):
            raise ConfigError("params", "must be an object of option names to values")
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise ConfigError(str(key), "unknown option")
        base = cls.preset(preset) if preset else cls()
        return base.replace(**data)

    def replace(self, **changes) -> "StyleConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides) -> "StyleConfig":
        if name not in PRESETS:
            raise ConfigError("preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # -- derived -------------------------------------------------------------------
    def scale_sizes(self) -> list[int]:
        """Long side of each scale, coarse to fine; none below 64 px (VGG sees too little there)."""
        sizes = [round(self.size / 2**k) for k in reversed(range(self.scales))]
        kept = [s for s in sizes if s >= 64]
        return kept or [self.size]

    def view_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """The halves (style_views - 1 of them) the style cost also sees a (width, height) result
        at, none with a long side under MIN_VIEW_SIDE."""
        sizes: list[tuple[int, int]] = []
        for _ in range(1, self.style_views):
            w, h = sizes[-1] if sizes else (width, height)
            if max(w, h) // 2 < MIN_VIEW_SIDE:
                break
            sizes.append((round(w / 2), round(h / 2)))
        return sizes

    def iterations_at(self, scale_index: int, num_scales: int) -> int:
        return self.iterations if scale_index == num_scales - 1 else self.coarse_iterations

    def layers(self) -> list[str]:
        """Every layer the run reads, content and style."""
        used = [n for n, w in self.content_layers.items() if w] + [n for n, w in self.style_layers.items() if w]
        return list(dict.fromkeys(used))

    def blend_weights(self, num_styles: int) -> list[float]:
        if not self.style_blend:
            return [1.0 / num_styles] * num_styles
        if len(self.style_blend) != num_styles:
            raise ConfigError(
                "style_blend", f"has {len(self.style_blend)} weights for {num_styles} style images")
        total = sum(self.style_blend)
        return [w / total for w in self.style_blend]


PRESETS: dict[str, dict[str, Any]] = {
    # 256 px in ~18 s on a 2-core CPU (a fresh process); match(256) 0.86x the balanced preset's (tubingen x starry).
    "fast": {"size": 256, "scales": 2, "coarse_iterations": 50, "iterations": 20},
    # The defaults: 512 px in 67-86 s on a 2-core CPU, a fresh process (README: Performance).
    "balanced": {},
    # 1024 px, meant for a GPU: the balanced schedule up to 512 px, then 60 iterations at 1024 px
    # with the style also seen at 512 px (style_views 2), which keeps the motifs the coarser
    # scales made whole. By the look measure (tubingen x starry, match(512) / match(256)) 0.021 /
    # 0.047 against 0.104 / 0.143 for the 200 + 200 + 200 + 100 iterations without a view it
    # had before, and closer to the painting at 512 px than the balanced preset (README: The look).
    "quality": {"size": 1024, "scales": 4, "coarse_iterations": 60, "iterations": 60, "style_views": 2},
}


def field_info(name: str) -> dataclasses.Field:
    """The dataclass field (default and metadata: help, min, max, choices) of one option."""
    return {f.name: f for f in fields(StyleConfig)}[name]


def _check_field(config: StyleConfig, f: dataclasses.Field) -> None:
    value, meta = getattr(config, f.name), f.metadata
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "int" or (kind == "int | None" and value is not None):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f.name, f"must be a whole number, not {value!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f.name, f"must be a number, not {value!r}")
        # Only a float can be NaN or infinite; math.isfinite() of an int past 1e308 (JSON allows
        # any) raises OverflowError, and the range check below refuses such an int anyway.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f.name, "must be a finite number")
    elif kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f.name, f"must be true or false, not {value!r}")
    elif kind == "str" and not isinstance(value, str):
        raise ConfigError(f.name, f"must be text, not {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f.name, f"must be one of {', '.join(meta['choices'])}, not {value!r}")
    if value is not None and meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f.name, f"must be at least {meta['min']}, not {value}")
    if value is not None and meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f.name, f"must be at most {meta['max']}, not {value}")


def _layer_weights(name: str, value: Any, top: float) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(name, "must map layer names to weights, e.g. {'relu4_2': 1}")
    out = {}
    for layer, weight in value.items():
        if layer not in LAYER_INDEX:
            raise ConfigError(name, f"unknown layer {layer!r}; use names such as relu1_1 … relu5_4")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or (
                isinstance(weight, float) and not math.isfinite(weight)):  # an int is finite (see _check_field)
            raise ConfigError(name, f"weight of {layer} must be a finite number, not {weight!r}")
        if not 0 <= weight <= top:
            raise ConfigError(name, f"weight of {layer} must be between 0 and {top:g}")
        out[layer] = float(weight)
    return MappingProxyType(out)


def _blend_weights(value: Any) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or any(
            isinstance(w, bool) or not isinstance(w, (int, float)) for w in value):
        raise ConfigError("style_blend", f"must be a list of numbers, one per style image, not {value!r}")
    try:
        return tuple(float(w) for w in value)
    except OverflowError:  # an int past 1e308: no float holds it
        raise ConfigError("style_blend", "weights must be finite and not negative") from None


def _check_device(device: str) -> None:
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return
    raise ConfigError("device", f"must be auto, cpu, cuda or cuda:N, not {device!r}")
