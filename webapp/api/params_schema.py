"""The job params as an OpenAPI schema, read from StyleConfig's field metadata (type, default,
bounds, choices, help), so the API publishes exactly what the server validates: every option,
its range and its meaning, minus those the server decides itself."""

from __future__ import annotations

import dataclasses
from typing import Any

from stylize.config import MAX_LAYER_WEIGHTS, StyleConfig
from stylize.vgg import LAYER_NAMES

from webapp.jobs.lifecycle import NOT_OFFERED, SERVER_CHOSEN_OPTIONS

# A schema has one maximum: the largest of any layer_normalisation; the server refuses a weight
# above the bound of the one chosen (400 naming it).
_BOUNDS = ", ".join(f"{top:g} with {name}" for name, top in MAX_LAYER_WEIGHTS.items())
LAYER_WEIGHTS = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0,
                                                            "maximum": max(MAX_LAYER_WEIGHTS.values())},
                 "description": f"Layer name ({LAYER_NAMES[0]} … {LAYER_NAMES[-1]}) → weight; the most "
                                f"allowed depends on layer_normalisation: {_BOUNDS}."}


def option_schema(field: dataclasses.Field) -> dict[str, Any]:
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    meta = field.metadata
    if kind.startswith("Mapping"):
        schema = dict(LAYER_WEIGHTS)
    elif kind.startswith("tuple"):
        schema = {"type": "array", "items": {"type": "number", "minimum": 0}}
    else:
        schema = {"int": {"type": "integer"}, "int | None": {"type": "integer", "nullable": True},
                  "float": {"type": "number"}, "bool": {"type": "boolean"}, "str": {"type": "string"}}[kind]
    if meta.get("choices"):
        schema["enum"] = [c for c in meta["choices"] if (field.name, c) not in NOT_OFFERED]
    if meta.get("min") is not None:
        schema["minimum"] = meta["min"]
    if meta.get("max") is not None:
        schema["maximum"] = meta["max"]
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    schema["default"] = dict(default) if kind.startswith("Mapping") else list(default) if kind.startswith(
        "tuple") else default
    schema["description"] = " ".join(part for part in (meta.get("help", ""), schema.get("description", "")) if part)
    return schema


def params_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Options of the run (the engine's StyleConfig), on top of `preset` when one is given; "
                       "an unknown option is a 400. In multipart requests: a JSON string.",
        "properties": {f.name: option_schema(f) for f in dataclasses.fields(StyleConfig)
                       if f.name not in SERVER_CHOSEN_OPTIONS},
    }
